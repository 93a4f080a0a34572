package agent

import (
	"encoding/binary"
	"fmt"
	"os"
)

// The enforcer's shared accounting file (native/src/shared.h, struct
// mosaic_shm, version 1), read for metrics. The offsets below are checked
// against the C header's offsetof() by enforcerusage_test.go, which
// compiles it.
const (
	shmFile      = "enforcer.shm"
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
	slotOffPID   = 0
	slotOffUsed  = 16
	shmSize      = shmOffSlots + shmSlots*shmSlotSize
)

// readEnforcerUsage sums, per card ordinal, the bytes the live processes
// of one container hold, from its accounting file. A missing file means
// the container has not allocated yet.
func readEnforcerUsage(path string) ([]uint64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if len(b) < shmSize {
		return nil, fmt.Errorf("%s: %d bytes, want %d", path, len(b), shmSize)
	}
	le := binary.LittleEndian
	if le.Uint64(b[shmOffMagic:]) != shmMagic || le.Uint32(b[shmOffVer:]) != shmVersion || le.Uint32(b[shmOffNSlots:]) != shmSlots {
		return nil, fmt.Errorf("%s: not a version %d enforcer accounting file", path, shmVersion)
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
