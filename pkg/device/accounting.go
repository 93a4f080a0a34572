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
	shmOffLive   = 40
	shmOffSlots  = 1216
	shmSlotSize  = 192
	// The slot's owner word packs a generation above the pid: the pid is
	// the int32 at offset 0 (0 free, -1 being reclaimed).
	slotOffPID  = 0
	slotOffUsed = 16
)

// ReadAccounting sums, per card ordinal, the bytes the live processes of
// one container hold, from its accounting file. A missing file (an error
// matching fs.ErrNotExist) means the container has not allocated yet.
//
// The container can write the directory the file is in, so the file may be
// a symlink, a FIFO, a device node, a huge or a truncated file: anything
// but a regular file is refused without opening what it names, and at most
// AccountingSize bytes are read.
func ReadAccounting(path string) ([]uint64, error) {
	b, err := readTenantFile(path, AccountingSize)
	if err != nil {
		return nil, err
	}
	used, err := ParseAccounting(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return used, nil
}

// ParseAccounting sums, per card ordinal, the bytes the live processes of
// one container hold, from the first AccountingSize bytes of its
// accounting file. The container can write the file: any content is
// either read as some usage or refused, never a panic.
func ParseAccounting(b []byte) ([]uint64, error) {
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
	return used, nil
}
