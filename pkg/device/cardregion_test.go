package device

import (
	"github.com/google/go-cmp/cmp"
	"testing"
)

// A C program built against the enforcer's own header prints the layout
// the Go reader assumes and writes a region with two tenants.
const regionProgram = `
#include <stddef.h>
#include <stdio.h>
#include "lease.h"
static struct mosaic_region r;
int main(int argc, char **argv) {
	printf("%zu %zu %zu %zu %zu %zu %zu %zu %zu %zu %zu %zu %zu %d %d\n",
		offsetof(struct mosaic_region, magic), offsetof(struct mosaic_region, version),
		offsetof(struct mosaic_region, switches), offsetof(struct mosaic_region, tenants),
		sizeof(struct mosaic_tenant), offsetof(struct mosaic_tenant, key), offsetof(struct mosaic_tenant, share),
		offsetof(struct mosaic_tenant, force), offsetof(struct mosaic_tenant, busy_ns),
		offsetof(struct mosaic_tenant, want_ns), offsetof(struct mosaic_tenant, leases),
		offsetof(struct mosaic_region, procs), sizeof(struct mosaic_lease_proc),
		MOSAIC_REGION_TENANTS, MOSAIC_REGION_PROCS);
	r.magic = MOSAIC_REGION_MAGIC; r.version = MOSAIC_REGION_VERSION; r.switches = 9;
	r.tenants[0].key = 77; r.tenants[0].share = 30; r.tenants[0].force = 1; r.tenants[0].busy_ns = 1000;
	r.tenants[5].key = 88; r.tenants[5].share = 0; r.tenants[5].leases = 4;
	FILE *f = fopen(argv[1], "wb");
	fwrite(&r, sizeof r, 1, f);
	return fclose(f);
}
`

func TestCardRegionLayout(t *testing.T) {
	got, file := runLayoutProgram(t, regionProgram, CardRegionFile)
	want := []int{regOffMagic, regOffVersion, regOffSwitches, regOffTenants, regTenantSize, tenOffKey, tenOffShare,
		tenOffForce, tenOffBusy, tenOffWant, tenOffLeases, regOffProcs, regProcSize, regTenants, regProcs}
	checkLayout(t, got, want)
	r, err := ReadCardRegion(file)
	if err != nil {
		t.Fatal(err)
	}
	if r.Switches != 9 || len(r.Tenants) != 2 {
		t.Fatalf("region = %+v, want 9 switches and 2 tenants", r)
	}
	if a := r.Tenants[0]; a.Key != 77 || a.Share != 30 || !a.Force || a.BusyNs != 1000 {
		t.Errorf("tenant 0 = %+v", a)
	}
	if b := r.Tenants[1]; b.Key != 88 || b.Share != 0 || b.Force || b.Leases != 4 {
		t.Errorf("tenant 1 = %+v", b)
	}
}

func TestParseCardRegionRejects(t *testing.T) {
	if _, err := ParseCardRegion(make([]byte, 10)); err == nil {
		t.Error("a short region was accepted")
	}
	r, err := ParseCardRegion(make([]byte, CardRegionSize))
	if err != nil || len(r.Tenants) != 0 {
		t.Errorf("a zero-filled region: %+v, %v; want no tenants", r, err)
	}
	b := make([]byte, CardRegionSize)
	copy(b, []byte("junkjunkjunk"))
	if _, err := ParseCardRegion(b); err == nil {
		t.Error("a region of unknown layout was accepted")
	}
}

// What EncodeCardRegion and EncodeAccounting write reads back as written
// (the layout tests check the decoders against the C headers).
func TestEncodeRoundTrip(t *testing.T) {
	r := &CardRegion{Switches: 9, Tenants: []CardTenant{
		{Key: 7, Share: 30, Force: true, BusyNs: 1500, WantNs: 2, Leases: 3},
		{Key: 8, Share: 0, BusyNs: 40},
	}}
	got, err := ParseCardRegion(EncodeCardRegion(r))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(r, got); diff != "" {
		t.Errorf("card region (-want,+got):\n%s", diff)
	}
	a := &Accounting{Used: make([]uint64, shmMaxCards), TenantKey: 7}
	a.Used[0], a.Used[3] = 1<<30, 5
	gotA, err := ParseAccounting(EncodeAccounting(a))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(a, gotA); diff != "" {
		t.Errorf("accounting (-want,+got):\n%s", diff)
	}
}
