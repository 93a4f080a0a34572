//go:build cgo

package discovery

/*
#cgo LDFLAGS: -ldl
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

// The part of the driver's dcmi_interface_api.h that Mosaic uses, declared
// here, with the header's layouts, so that building needs no Ascend SDK.
struct dcmi_chip_info {
	unsigned char chip_type[32];
	unsigned char chip_name[32];
	unsigned char chip_ver[32];
	unsigned int aicore_cnt;
};
struct dcmi_hbm_info {
	unsigned long long memory_size; // MiB
	unsigned int freq;
	unsigned long long memory_usage;
	int temp;
	unsigned int bandwith_util_rate;
};
struct dcmi_get_memory_info_stru {
	unsigned long long memory_size; // MiB
	unsigned long long memory_available;
	unsigned int freq;
	unsigned long hugepagesize;
	unsigned long hugepages_total;
	unsigned long hugepages_free;
	unsigned int utiliza;
	unsigned char reserve[60];
};
struct dcmi_pcie_info_all {
	unsigned int venderid;
	unsigned int subvenderid;
	unsigned int deviceid;
	unsigned int subdeviceid;
	int domain;
	unsigned int bdf_busid;
	unsigned int bdf_deviceid;
	unsigned int bdf_funcid;
	unsigned char reserve[32];
};
struct dcmi_die_id {
	unsigned int soc_die[5];
};
enum dcmi_die_type { NDIE, VDIE, DDIE, INVALID_DIE };

int dcmi_init(void);
int dcmi_get_card_num_list(int *card_num, int *card_list, int list_len);
int dcmi_get_device_num_in_card(int card_id, int *device_num);
int dcmi_get_device_logic_id(int *device_logic_id, int card_id, int device_id);
int dcmi_get_device_chip_info(int card_id, int device_id, struct dcmi_chip_info *chip_info);
int dcmi_get_device_health(int card_id, int device_id, unsigned int *health);
int dcmi_get_device_hbm_info(int card_id, int device_id, struct dcmi_hbm_info *hbm_info);
int dcmi_get_device_memory_info_v3(int card_id, int device_id, struct dcmi_get_memory_info_stru *memory_info);
int dcmi_get_device_pcie_info_v2(int card_id, int device_id, struct dcmi_pcie_info_all *pcie_info);
int dcmi_get_device_die_v2(int card_id, int device_id, enum dcmi_die_type input_type, struct dcmi_die_id *die_id);
int dcmi_get_topo_info_by_device_id(int card_id1, int device_id1, int card_id2, int device_id2, int *topo_type);

// X(name, required): the functions looked up in libdcmi. Without a
// required one the library is unusable; an optional one that is missing
// (older drivers, other chips) reads as MOSAIC_DCMI_MISSING.
#define MOSAIC_DCMI_FUNCS(X)                \
	X(dcmi_init, 1)                         \
	X(dcmi_get_card_num_list, 1)            \
	X(dcmi_get_device_num_in_card, 1)       \
	X(dcmi_get_device_logic_id, 1)          \
	X(dcmi_get_device_chip_info, 1)         \
	X(dcmi_get_device_health, 1)            \
	X(dcmi_get_device_hbm_info, 0)          \
	X(dcmi_get_device_memory_info_v3, 0)    \
	X(dcmi_get_device_pcie_info_v2, 0)      \
	X(dcmi_get_device_die_v2, 0)           \
	X(dcmi_get_topo_info_by_device_id, 0)

#define MOSAIC_DCMI_MISSING (-99999)

struct mosaic_dcmi {
	void *handle;
#define X(name, required) __typeof__(&name) name;
	MOSAIC_DCMI_FUNCS(X)
#undef X
};

enum { MOSAIC_DCMI_OK, MOSAIC_DCMI_NO_LIBRARY, MOSAIC_DCMI_NO_SYMBOL };

// mosaic_dcmi_open loads libdcmi and looks its functions up. On failure it
// returns NULL, sets *status and writes the reason into err.
static struct mosaic_dcmi *mosaic_dcmi_open(const char *path, int *status, char *err, size_t errlen) {
	void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (h == NULL) {
		*status = MOSAIC_DCMI_NO_LIBRARY;
		snprintf(err, errlen, "%s", dlerror());
		return NULL;
	}
	struct mosaic_dcmi *l = calloc(1, sizeof *l);
	if (l == NULL) {
		dlclose(h);
		*status = MOSAIC_DCMI_NO_SYMBOL;
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	l->handle = h;
#define X(name, required)                                                     \
	l->name = (__typeof__(&name))dlsym(h, #name);                              \
	if (l->name == NULL && required) {                                         \
		*status = MOSAIC_DCMI_NO_SYMBOL;                                       \
		snprintf(err, errlen, "%s: function %s not found", path, #name);       \
		dlclose(h);                                                            \
		free(l);                                                               \
		return NULL;                                                           \
	}
	MOSAIC_DCMI_FUNCS(X)
#undef X
	*status = MOSAIC_DCMI_OK;
	return l;
}

static void mosaic_dcmi_close(struct mosaic_dcmi *l) {
	dlclose(l->handle);
	free(l);
}

// Go cannot call C function pointers; these calls can.
#define MOSAIC_DCMI_CALL(l, name, ...) ((l)->name != NULL ? (l)->name(__VA_ARGS__) : MOSAIC_DCMI_MISSING)
static int m_init(struct mosaic_dcmi *l) { return l->dcmi_init(); }
static int m_card_list(struct mosaic_dcmi *l, int *n, int *cards, int len) { return MOSAIC_DCMI_CALL(l, dcmi_get_card_num_list, n, cards, len); }
static int m_device_num(struct mosaic_dcmi *l, int card, int *n) { return MOSAIC_DCMI_CALL(l, dcmi_get_device_num_in_card, card, n); }
static int m_logic_id(struct mosaic_dcmi *l, int card, int dev, int *id) { return MOSAIC_DCMI_CALL(l, dcmi_get_device_logic_id, id, card, dev); }
static int m_chip_info(struct mosaic_dcmi *l, int card, int dev, struct dcmi_chip_info *i) { return MOSAIC_DCMI_CALL(l, dcmi_get_device_chip_info, card, dev, i); }
static int m_health(struct mosaic_dcmi *l, int card, int dev, unsigned int *h) { return MOSAIC_DCMI_CALL(l, dcmi_get_device_health, card, dev, h); }
static int m_hbm_info(struct mosaic_dcmi *l, int card, int dev, struct dcmi_hbm_info *i) { return MOSAIC_DCMI_CALL(l, dcmi_get_device_hbm_info, card, dev, i); }
static int m_memory_info(struct mosaic_dcmi *l, int card, int dev, struct dcmi_get_memory_info_stru *i) { return MOSAIC_DCMI_CALL(l, dcmi_get_device_memory_info_v3, card, dev, i); }
static int m_pcie_info(struct mosaic_dcmi *l, int card, int dev, struct dcmi_pcie_info_all *i) { return MOSAIC_DCMI_CALL(l, dcmi_get_device_pcie_info_v2, card, dev, i); }
static int m_topo(struct mosaic_dcmi *l, int card1, int dev1, int card2, int dev2, int *t) { return MOSAIC_DCMI_CALL(l, dcmi_get_topo_info_by_device_id, card1, dev1, card2, dev2, t); }
static int m_vdie_id(struct mosaic_dcmi *l, int card, int dev, struct dcmi_die_id *i) { return MOSAIC_DCMI_CALL(l, dcmi_get_device_die_v2, card, dev, VDIE, i); }
*/
import "C"

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"unsafe"

	"k8s.io/klog/v2"

	"github.com/mosaic-gpu/mosaic/pkg/device"
)

var _ Backend = &Ascend{}

// Ascend discovers NPUs through the driver's DCMI library, loaded at run
// time so that the agent builds and starts without the Ascend driver.
type Ascend struct {
	// mu serializes DCMI calls, which the driver does not document as
	// thread-safe, and guards lib against Close.
	mu        sync.Mutex
	lib       *C.struct_mosaic_dcmi
	sysfsRoot string
}

// maxDCMICards is the card list's capacity (MAX_CARD_NUM in the header).
const maxDCMICards = 64

// NewAscend loads libdcmi and initializes DCMI. Without the library, or
// when DCMI finds no driver to talk to, the error wraps ErrNoDriver.
func NewAscend(opts AscendOptions) (*Ascend, error) {
	paths := ascendLibraryPaths
	if opts.LibraryPath != "" {
		paths = []string{opts.LibraryPath}
	}
	var reasons []string
	for _, path := range paths {
		lib, missing, err := openDCMI(path)
		if missing {
			reasons = append(reasons, err.Error())
			continue
		}
		if err != nil {
			return nil, err
		}
		if rc := C.m_init(lib); rc != 0 {
			C.mosaic_dcmi_close(lib)
			return nil, fmt.Errorf("%w: dcmi_init: %s", ErrNoDriver, dcmiErr(rc))
		}
		return &Ascend{lib: lib, sysfsRoot: opts.SysfsRoot}, nil
	}
	return nil, fmt.Errorf("%w: loading libdcmi: %s", ErrNoDriver, strings.Join(reasons, "; "))
}

// openDCMI loads one libdcmi; missing is true when there is none at path.
func openDCMI(path string) (lib *C.struct_mosaic_dcmi, missing bool, err error) {
	cpath := C.CString(path)
	defer C.free(unsafe.Pointer(cpath))
	var status C.int
	var msg [512]C.char
	lib = C.mosaic_dcmi_open(cpath, &status, &msg[0], C.size_t(len(msg)))
	switch status {
	case C.MOSAIC_DCMI_OK:
		return lib, false, nil
	case C.MOSAIC_DCMI_NO_LIBRARY:
		return nil, true, errors.New(C.GoString(&msg[0]))
	}
	return nil, false, fmt.Errorf("loading libdcmi: %s", C.GoString(&msg[0]))
}

func (a *Ascend) Name() string { return "ascend" }

// Close unloads libdcmi; the backend is unusable afterwards.
func (a *Ascend) Close() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.lib != nil {
		C.mosaic_dcmi_close(a.lib)
		a.lib = nil
	}
	return nil
}

// Devices lists the NPU chips of every card, ordered by logic id. A chip
// whose queries fail is listed unhealthy; one without a logic id cannot be
// addressed, and is logged and left out.
func (a *Ascend) Devices(ctx context.Context) ([]device.Device, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.lib == nil {
		return nil, errors.New("the Ascend backend is closed")
	}
	var n C.int
	var cards [maxDCMICards]C.int
	if rc := C.m_card_list(a.lib, &n, &cards[0], maxDCMICards); rc != 0 {
		return nil, fmt.Errorf("listing NPU cards (dcmi_get_card_num_list): %s", dcmiErr(rc))
	}
	log := klog.FromContext(ctx)
	var devs []device.Device
	var ids [][2]C.int // each chip's card and chip id
	for _, card := range cards[:max(0, min(int(n), maxDCMICards))] {
		var chips C.int
		if rc := C.m_device_num(a.lib, card, &chips); rc != 0 {
			log.Error(errors.New(dcmiErr(rc)), "Leaving out an NPU card whose chips DCMI cannot count", "card", int(card))
			continue
		}
		for chip := range chips {
			d, err := a.readDevice(card, chip)
			if err != nil {
				log.Error(err, "Leaving out an NPU chip", "card", int(card), "chip", int(chip))
				continue
			}
			devs = append(devs, d)
			ids = append(ids, [2]C.int{card, chip})
		}
	}
	a.addLinks(devs, ids)
	sort.Slice(devs, func(i, j int) bool { return devs[i].Index < devs[j].Index })
	return devs, nil
}

// addLinks records each chip's peers as DCMI's topology query reports
// them: HCCS, or a PCIe switch (ascendLink). Drivers and chips without the
// query (it serves the 910B boards) leave the chips without links, grouped
// by NUMA node alone.
func (a *Ascend) addLinks(devs []device.Device, ids [][2]C.int) {
	for i := range devs {
		for j := range devs {
			if i == j {
				continue
			}
			var topo C.int
			if rc := C.m_topo(a.lib, ids[i][0], ids[i][1], ids[j][0], ids[j][1], &topo); rc != 0 {
				continue
			}
			if t, ok := ascendLink(int(topo)); ok {
				devs[i].Links = append(devs[i].Links, device.Link{Peer: devs[j].UUID, Type: t, Count: 1})
			}
		}
	}
}

func (a *Ascend) readDevice(card, chip C.int) (device.Device, error) {
	var logic C.int
	if rc := C.m_logic_id(a.lib, card, chip, &logic); rc != 0 {
		return device.Device{}, fmt.Errorf("reading the logic id (dcmi_get_device_logic_id): %s", dcmiErr(rc))
	}
	d := device.Device{
		Index: int(logic), Vendor: device.VendorAscend, Model: unknownModel,
		MemoryMiB: unknownMemoryMiB, NUMA: device.UnknownNUMA, Healthy: true,
	}
	var info C.struct_dcmi_chip_info
	if rc := C.m_chip_info(a.lib, card, chip, &info); rc == 0 {
		d.Model = ascendModel(cBytes(C.GoBytes(unsafe.Pointer(&info.chip_type[0]), C.int(len(info.chip_type)))),
			cBytes(C.GoBytes(unsafe.Pointer(&info.chip_name[0]), C.int(len(info.chip_name)))))
		d.ComputeUnits = int(info.aicore_cnt)
	} else {
		d.Healthy = false
	}
	if mem := a.memoryMiB(card, chip); mem > 0 {
		d.MemoryMiB = mem
	} else {
		d.Healthy = false
	}
	var health C.uint
	if rc := C.m_health(a.lib, card, chip, &health); rc != 0 || !ascendHealthy(uint32(health)) {
		d.Healthy = false
	}

	var pcie C.struct_dcmi_pcie_info_all
	if rc := C.m_pcie_info(a.lib, card, chip, &pcie); rc == 0 && pcie.domain >= 0 {
		d.PCIBus = formatPCIBusID(uint64(pcie.domain), uint64(pcie.bdf_busid), uint64(pcie.bdf_deviceid), uint64(pcie.bdf_funcid))
		d.NUMA = readNUMANode(a.sysfsRoot, d.PCIBus)
	}
	d.UUID = a.uuid(card, chip, d.PCIBus)
	return d, nil
}

// memoryMiB reads a chip's memory: HBM on training chips; the inference
// chips (310P) report none there and give their DDR size instead.
func (a *Ascend) memoryMiB(card, chip C.int) int64 {
	var hbm C.struct_dcmi_hbm_info
	if rc := C.m_hbm_info(a.lib, card, chip, &hbm); rc == 0 && hbm.memory_size > 0 {
		return int64(hbm.memory_size)
	}
	var mem C.struct_dcmi_get_memory_info_stru
	if rc := C.m_memory_info(a.lib, card, chip, &mem); rc == 0 {
		return int64(mem.memory_size)
	}
	return 0
}

// uuid names a chip by its die id; where the chip cannot report one, by
// its PCI address, and as a last resort by its card and chip ids.
func (a *Ascend) uuid(card, chip C.int, pciBus string) string {
	var die C.struct_dcmi_die_id
	if rc := C.m_vdie_id(a.lib, card, chip, &die); rc == 0 {
		var id [5]uint32
		nonzero := false
		for i := range id {
			id[i] = uint32(die.soc_die[i])
			nonzero = nonzero || id[i] != 0
		}
		if nonzero {
			return ascendDieUUID(id)
		}
	}
	if pciBus != "" {
		return "NPU-" + pciBus
	}
	return fmt.Sprintf("NPU-card%d-chip%d", int(card), int(chip))
}

func dcmiErr(rc C.int) string {
	if rc == C.MOSAIC_DCMI_MISSING {
		return "function missing from this libdcmi"
	}
	return dcmiError(int(rc))
}
