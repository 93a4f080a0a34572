package placement

import (
	"fmt"
	"slices"
)

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
	// ReasonTopology: the pod asks for cards linked by NVLink
	// (device.GPUTopologyAnnotation) and the node has no such set free.
	ReasonTopology = "not enough fitting GPUs linked to each other by NVLink (mosaic.io/gpu-topology: nvlink)"
	ReasonTooLarge = "GPU request exceeds every GPU on the node"
	// ReasonHandoutBusy: a node without NRI takes one device pod at a time.
	ReasonHandoutBusy = "node agent still handing out devices to an earlier pod (node without NRI)"
)

// reasonSet is a set of the reasons above, so that a placement that fails
// says why without allocating: the strings of each set are built once.
type reasonSet uint16

// The reasons a card rejects a share, in the order reject tests them.
const (
	rUnhealthy reasonSet = 1 << iota
	rSelector
	rTooLarge
	rExclusive
	rNeedsEmpty
	rSlots
	rMemory
	rCores
	// Reasons for the whole container.
	rWrongModel
	rTooFewCards
	rNUMA
	rTopology
	// rTooLargeMiB: the request exceeds every card; the message names the
	// sizes.
	rTooLargeMiB
)

var reasonText = map[reasonSet]string{
	rUnhealthy: ReasonUnhealthy, rSelector: ReasonSelector, rTooLarge: ReasonTooLarge, rExclusive: ReasonExclusive,
	rNeedsEmpty: ReasonNeedsEmpty, rSlots: ReasonSlots, rMemory: ReasonMemory, rCores: ReasonCores,
	rWrongModel: ReasonWrongModel, rTooFewCards: ReasonTooFewCards, rNUMA: ReasonNUMA,
	rTopology: ReasonTopology,
}

const cardReasons = rCores<<1 - 1

// reasonLists holds, for every set of card reasons and every container
// reason, its strings sorted. The lists are shared: their capacity is
// their length, so that appending to one copies it.
var reasonLists = func() map[reasonSet][]string {
	m := map[reasonSet][]string{}
	for set := reasonSet(1); set <= cardReasons; set++ {
		var l []string
		for bit := reasonSet(1); bit <= rCores; bit <<= 1 {
			if set&bit != 0 {
				l = append(l, reasonText[bit])
			}
		}
		slices.Sort(l)
		m[set] = slices.Clip(l)
	}
	for _, r := range []reasonSet{rWrongModel, rTooFewCards, rNUMA, rTopology} {
		m[r] = []string{reasonText[r]}
	}
	return m
}()

var noDevices = []string{ReasonNoDevices}

// why is why a container does not fit: a set of reasons, and the sizes
// for rTooLargeMiB. The zero why means it fits.
type why struct {
	set          reasonSet
	mem, largest int64
}

func (w why) reasons() []string {
	if w.set != rTooLargeMiB {
		return reasonLists[w.set]
	}
	if w.mem > 0 {
		return []string{fmt.Sprintf("GPU memory request %d MiB exceeds every GPU on the node (largest offers %d MiB)", w.mem, w.largest)}
	}
	return []string{ReasonTooLarge}
}
