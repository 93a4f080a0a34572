package discovery

import "time"

// Placeholders for a card whose queries fail: the inventory requires a
// model and a memory size, and the scheduler places nothing on an
// unhealthy card, so these are never used for placement.
const (
	unknownModel     = "unknown"
	unknownMemoryMiB = 1
)

// NVIDIAOptions configures the NVIDIA backend.
type NVIDIAOptions struct {
	// LibraryPath is the path of libnvidia-ml; empty means the dynamic
	// loader's search for libnvidia-ml.so.1.
	LibraryPath string
	// SysfsRoot is where the host's sysfs is mounted; empty means /sys.
	SysfsRoot string
	// HealthRecovery is how long a card that an XID made unhealthy must
	// go without another before a probe may report it healthy again (see
	// WatchHealth); 0 means DefaultHealthRecovery.
	HealthRecovery time.Duration
}

// DefaultHealthRecovery is long enough that a card which keeps failing is
// not offered between its errors, and short enough that one whose fault
// cleared (a contained ECC error, a driver recovery) is back within minutes.
const DefaultHealthRecovery = 5 * time.Minute

// The XIDs an application causes, not the card: the card stays healthy.
// This is the list NVIDIA's device plugin ignores.
var applicationXIDs = map[uint64]bool{
	13:  true, // graphics engine exception
	31:  true, // GPU memory page fault
	43:  true, // GPU stopped processing (the faulting context was killed)
	45:  true, // preemptive cleanup after a previous error
	68:  true, // video processor exception
	109: true, // context switch timeout
}

// xidIsFatal tells whether a critical XID event makes the card unhealthy.
func xidIsFatal(xid uint64) bool { return !applicationXIDs[xid] }
