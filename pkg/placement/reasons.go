package placement

// Reasons a card cannot take a share. They are constant strings so that the
// scheduler's "0/N nodes are available" summary counts them across nodes.
const (
	ReasonNoDevices   = "node has no Mosaic device inventory"
	ReasonUnhealthy   = "GPU unhealthy or in MIG mode"
	ReasonWrongModel  = "no GPU of the requested vendor or model"
	ReasonSelector    = "GPU excluded by the pod's type or UUID annotations"
	ReasonSlots       = "no free vGPU slot on GPU"
	ReasonMemory      = "insufficient GPU memory"
	ReasonCores       = "insufficient GPU cores"
	ReasonExclusive   = "GPU in exclusive use"
	ReasonNeedsEmpty  = "exclusive request (cores=100) needs an unused GPU"
	ReasonTooFewCards = "fewer GPUs on the node than requested"
	ReasonNUMA        = "not enough fitting GPUs on one NUMA node"
	ReasonTooLarge    = "GPU request exceeds every GPU on the node"
	// ReasonHandoutBusy: a node without NRI takes one device pod at a time.
	ReasonHandoutBusy = "node agent still handing out devices to an earlier pod (node without NRI)"
)
