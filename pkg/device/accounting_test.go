package device

import (
	"os"
	"testing"
)

// The enforcer writes the accounting file; a C program built against its
// own header checks the layout the Go reader assumes and writes a file
// with two live processes and one freed slot.
const layoutProgram = `
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include "shared.h"
static struct mosaic_shm shm;
int main(int argc, char **argv) {
	printf("%zu %zu %zu %zu %zu %zu %zu %zu %d %d\n", offsetof(struct mosaic_shm, magic), offsetof(struct mosaic_shm, version),
		offsetof(struct mosaic_shm, nslots), offsetof(struct mosaic_shm, tenant_key), offsetof(struct mosaic_shm, live), offsetof(struct mosaic_shm, slots),
		sizeof(struct mosaic_slot), offsetof(struct mosaic_slot, used), MOSAIC_SHM_SLOTS, MOSAIC_MAX_CARDS);
	shm.magic = MOSAIC_SHM_MAGIC; shm.version = MOSAIC_SHM_VERSION; shm.nslots = MOSAIC_SHM_SLOTS;
	shm.tenant_key = 0x1234567890abcdefull;
	shm.slots[3].owner = (7ull << 32) | 100; shm.slots[3].used[0] = 1000; shm.slots[3].used[1] = 7;
	shm.slots[700].owner = 200; shm.slots[700].used[0] = 24;
	shm.slots[9].owner = 5ull << 32; shm.slots[9].used[0] = 5555; /* freed, bit clear */
	shm.live[0] = 1ull << 3; shm.live[700 / 64] = 1ull << (700 % 64);
	FILE *f = fopen(argv[1], "wb");
	fwrite(&shm, sizeof shm, 1, f);
	return fclose(f);
}
`

func TestAccountingLayout(t *testing.T) {
	got, file := runLayoutProgram(t, layoutProgram, AccountingFile)
	if shmMaxCards != MaxCardsPerContainer {
		t.Errorf("the accounting file has %d cards, requests allow %d per container", shmMaxCards, MaxCardsPerContainer)
	}
	want := []int{shmOffMagic, shmOffVer, shmOffNSlots, shmOffTenant, shmOffLive, shmOffSlots, shmSlotSize, slotOffUsed, shmSlots, shmMaxCards}
	checkLayout(t, got, want)
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != AccountingSize {
		t.Errorf("the C program wrote %d bytes, Go assumes %d", len(b), AccountingSize)
	}
	a, err := ParseAccounting(b)
	if err != nil {
		t.Fatal(err)
	}
	if a.TenantKey != 0x1234567890abcdef {
		t.Errorf("tenant key = %#x, want 0x1234567890abcdef", a.TenantKey)
	}
	used := a.Used
	if used[0] != 1024 || used[1] != 7 || used[2] != 0 {
		t.Errorf("usage = %v, want card 0: 1024 (freed slot not counted), card 1: 7", used[:3])
	}
	if _, err := ParseAccounting(make([]byte, AccountingSize)); err == nil {
		t.Error("a file that is not an accounting file was read")
	}
}
