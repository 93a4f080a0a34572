package device

import (
	"encoding/binary"
	"fmt"
)

// The enforcer's shared accounting file (native/src/shared.h, struct
// mosaic_shm, version 1): all processes of a container account the card
// memory they hold in one file in SharedDir, which the node agent reads
// for metrics. The offsets below are checked against the C header's
// offsetof() by accounting_test.go, which compiles it.
const (
	// AccountingFile is the file's name in SharedDir.
	AccountingFile = "enforcer.shm"
	// AccountingSize is the size of the file, and all a reader needs of it.
	AccountingSize = shmOffSlots + shmSlots*shmSlotSize

	shmMagic     = 0x314d48534b53434d // "MCSKSHM1"
	shmVersion   = 1
	shmSlots     = 1024
	shmMaxCards  = 16
	shmOffMagic  = 0
	shmOffVer    = 8
	shmOffNSlots = 12
	shmOffTenant = 16
	shmOffLive   = 40
	shmOffSlots  = 1216
	shmSlotSize  = 192
	// The slot's owner word packs a generation above the pid: the pid is
	// the int32 at offset 0 (0 free, -1 being reclaimed).
	slotOffPID  = 0
	slotOffUsed = 16
)

// Accounting is what a container's accounting file says.
type Accounting struct {
	// Used is, per card ordinal, the bytes the container's live processes
	// hold.
	Used []uint64
	// TenantKey is the container's identity in its cards' regions
	// (CardTenant.Key); 0 until a process of it joined one.
	TenantKey uint64
}

// ReadAccounting reads one container's accounting file. A missing file (an
// error matching fs.ErrNotExist) means the container has not allocated yet.
//
// The container can write the directory the file is in, so the file may be
// a symlink, a FIFO, a device node, a huge or a truncated file: anything
// but a regular file is refused without opening what it names, and at most
// AccountingSize bytes are read.
func ReadAccounting(path string) (*Accounting, error) {
	b, err := readTenantFile(path, AccountingSize)
	if err != nil {
		return nil, err
	}
	a, err := ParseAccounting(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return a, nil
}

// ParseAccounting decodes the first AccountingSize bytes of a container's
// accounting file. The container can write the file: any content is either
// read as some usage or refused, never a panic.
func ParseAccounting(b []byte) (*Accounting, error) {
	if len(b) < AccountingSize {
		return nil, fmt.Errorf("%d bytes, want %d", len(b), AccountingSize)
	}
	le := binary.LittleEndian
	if le.Uint64(b[shmOffMagic:]) != shmMagic || le.Uint32(b[shmOffVer:]) != shmVersion || le.Uint32(b[shmOffNSlots:]) != shmSlots {
		return nil, fmt.Errorf("not a version %d enforcer accounting file", shmVersion)
	}
	used := make([]uint64, shmMaxCards)
	for s := range shmSlots {
		if le.Uint64(b[shmOffLive+8*(s/64):])&(1<<(s%64)) == 0 {
			continue
		}
		slot := b[shmOffSlots+s*shmSlotSize:]
		if int32(le.Uint32(slot[slotOffPID:])) <= 0 {
			continue
		}
		for c := range shmMaxCards {
			used[c] += le.Uint64(slot[slotOffUsed+8*c:])
		}
	}
	return &Accounting{Used: used, TenantKey: le.Uint64(b[shmOffTenant:])}, nil
}

// EncodeAccounting writes a as an accounting file, one live process holding
// all of it: what the enforcer would write, for the node agent's tests and
// the simulator. At most shmMaxCards cards.
func EncodeAccounting(a *Accounting) []byte {
	b := make([]byte, AccountingSize)
	le := binary.LittleEndian
	le.PutUint64(b[shmOffMagic:], shmMagic)
	le.PutUint32(b[shmOffVer:], shmVersion)
	le.PutUint32(b[shmOffNSlots:], shmSlots)
	le.PutUint64(b[shmOffTenant:], a.TenantKey)
	le.PutUint64(b[shmOffLive:], 1)
	le.PutUint32(b[shmOffSlots+slotOffPID:], 1)
	for c, u := range a.Used[:min(len(a.Used), shmMaxCards)] {
		le.PutUint64(b[shmOffSlots+slotOffUsed+8*c:], u)
	}
	return b
}
