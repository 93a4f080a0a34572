package device

// What container runtimes choose a container's cards from. The node agent
// sets these on every container it sees: the cards the scheduler allocated
// where it allocated some, none otherwise, so that what an image or a pod
// spec says never selects a card.
const (
	// NVIDIAVisibleDevicesEnv is read by the NVIDIA container toolkit: a
	// list of card UUIDs, "all", or NVIDIANoDevices.
	NVIDIAVisibleDevicesEnv = "NVIDIA_VISIBLE_DEVICES"
	// NVIDIANoDevices gives a container no GPU. Removing the variable
	// would not do: the toolkit reads an unset NVIDIA_VISIBLE_DEVICES as
	// "all" for legacy CUDA images (CUDA_VERSION set, NVIDIA_REQUIRE_CUDA
	// not).
	NVIDIANoDevices = "void"
	// NVIDIADeviceListRoot is where the toolkit, with
	// accept-nvidia-visible-devices-as-volume-mounts, reads a container's
	// GPUs from: /dev/null bind-mounted at NVIDIADeviceListRoot/<UUID>.
	// A pod cannot make such a mount without a hostPath volume; the node
	// agent adds one per granted card.
	NVIDIADeviceListRoot = "/var/run/nvidia-container-devices"
	// NVIDIADeviceListSource is the host side of those mounts.
	NVIDIADeviceListSource = "/dev/null"

	// AscendVisibleDevicesEnv is read by Ascend's container runtime hook:
	// card indexes; empty gives the container none.
	AscendVisibleDevicesEnv = "ASCEND_VISIBLE_DEVICES"
	// AscendRTVisibleDevicesEnv narrows, inside the container, the cards
	// the CANN runtime uses; it is cleared on containers without Ascend
	// cards so that no stale selection survives.
	AscendRTVisibleDevicesEnv = "ASCEND_RT_VISIBLE_DEVICES"
	// AscendVNPUSpecsEnv names the vNPU template Ascend's runtime carves
	// a fractional share from.
	AscendVNPUSpecsEnv = "ASCEND_VNPU_SPECS"
)
