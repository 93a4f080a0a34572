package device

import (
	"encoding/binary"
	"fmt"
	"path"
)

// The card region (native/src/lease.h, struct mosaic_region, version 1):
// one file per card on the node, which the node agent creates and mounts
// into every container holding a share of that card, and in which the
// enforcers of those containers take turns on the card (exclusive time
// leases, weighted by share). The agent reads it for metrics: each
// container's share and GPU time. The offsets are checked against the C
// header by cardregion_test.go, which compiles it.
const (
	// CardRegionDir holds one directory per card, named by its UUID, in
	// the container as on the host under the agent's state directory.
	CardRegionDir = RunDir + "/cards"
	// CardRegionFile is the region's file in a card's directory.
	CardRegionFile = "lease"
	// CardRegionSize is the size of the file, and all a reader needs of it.
	CardRegionSize = regOffProcs + regProcs*regProcSize

	regMagic       = 0x314e474552534f4d // "MOSREGN1"
	regVersion     = 1
	regTenants     = 64
	regProcs       = 512
	regOffMagic    = 0
	regOffVersion  = 8
	regOffSwitches = 48
	regOffTenants  = 128
	regTenantSize  = 64
	tenOffKey      = 0
	tenOffShare    = 8
	tenOffForce    = 12
	tenOffBusy     = 40
	tenOffWant     = 48
	tenOffLeases   = 56
	regOffProcs    = regOffTenants + regTenants*regTenantSize
	regProcSize    = 64
)

// CardRegionPath is the region of the card with this UUID under dir
// (CardRegionDir in a container).
func CardRegionPath(dir, uuid string) string { return path.Join(dir, uuid, CardRegionFile) }

// CardTenant is one container's entry in a card region.
type CardTenant struct {
	// Key identifies the container (random, chosen by its first process).
	Key uint64
	// Share is its guaranteed percent of the card's time; 0 best effort.
	Share int
	Force bool
	// BusyNs is the GPU time charged to it, WantNs the CLOCK_MONOTONIC
	// time its processes last wanted the card, Leases the turns it took.
	BusyNs, WantNs, Leases uint64
}

// CardRegion is what a region file says.
type CardRegion struct {
	// Switches counts hand-overs of the lease between processes.
	Switches uint64
	Tenants  []CardTenant
}

// Tenant is the entry of the container with this key; nil when r is nil,
// the key is 0 (the container never joined a region) or not there.
func (r *CardRegion) Tenant(key uint64) *CardTenant {
	if r == nil || key == 0 {
		return nil
	}
	for i := range r.Tenants {
		if r.Tenants[i].Key == key {
			return &r.Tenants[i]
		}
	}
	return nil
}

// ReadCardRegion reads a region file as safely as an accounting file:
// tenants can write it.
func ReadCardRegion(file string) (*CardRegion, error) {
	b, err := readTenantFile(file, CardRegionSize)
	if err != nil {
		return nil, err
	}
	r, err := ParseCardRegion(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return r, nil
}

// ParseCardRegion decodes the first CardRegionSize bytes of a region. A
// zero-filled region (no process joined yet) has no tenants.
func ParseCardRegion(b []byte) (*CardRegion, error) {
	if len(b) < CardRegionSize {
		return nil, fmt.Errorf("%d bytes, want %d", len(b), CardRegionSize)
	}
	le := binary.LittleEndian
	r := &CardRegion{}
	switch m := le.Uint64(b[regOffMagic:]); {
	case m == 0:
		return r, nil
	case m != regMagic || le.Uint32(b[regOffVersion:]) != regVersion:
		return nil, fmt.Errorf("not a version %d card region", regVersion)
	}
	r.Switches = le.Uint64(b[regOffSwitches:])
	for i := range regTenants {
		t := b[regOffTenants+i*regTenantSize:]
		key := le.Uint64(t[tenOffKey:])
		if key == 0 {
			continue
		}
		share := int(int32(le.Uint32(t[tenOffShare:])))
		if share < 0 || share > MaxCores {
			return nil, fmt.Errorf("tenants[%d].share %d is not in 0..%d", i, share, MaxCores)
		}
		r.Tenants = append(r.Tenants, CardTenant{
			Key: key, Share: share, Force: le.Uint32(t[tenOffForce:]) != 0,
			BusyNs: le.Uint64(t[tenOffBusy:]), WantNs: le.Uint64(t[tenOffWant:]), Leases: le.Uint64(t[tenOffLeases:]),
		})
	}
	return r, nil
}

// EncodeCardRegion writes r as a card region: what the enforcers would
// write, for the node agent's tests and the simulator. At most regTenants
// tenants.
func EncodeCardRegion(r *CardRegion) []byte {
	b := make([]byte, CardRegionSize)
	le := binary.LittleEndian
	le.PutUint64(b[regOffMagic:], regMagic)
	le.PutUint32(b[regOffVersion:], regVersion)
	le.PutUint64(b[regOffSwitches:], r.Switches)
	for i, tn := range r.Tenants[:min(len(r.Tenants), regTenants)] {
		t := b[regOffTenants+i*regTenantSize:]
		le.PutUint64(t[tenOffKey:], tn.Key)
		le.PutUint32(t[tenOffShare:], uint32(tn.Share))
		if tn.Force {
			le.PutUint32(t[tenOffForce:], 1)
		}
		le.PutUint64(t[tenOffBusy:], tn.BusyNs)
		le.PutUint64(t[tenOffWant:], tn.WantNs)
		le.PutUint64(t[tenOffLeases:], tn.Leases)
	}
	return b
}
