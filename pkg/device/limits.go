package device

import (
	"bufio"
	"fmt"
	"strconv"
	"strings"
)

// The limits file is how the node agent tells the enforcer in a container
// what it may use. It is line-based text so that the C enforcer parses it
// with a few lines of code and no JSON library:
//
//	# comment
//	mosaic-limits 1
//	policy default|force|disable
//	card <ordinal> <uuid> memory=<bytes> cores=<0-100>
//
// ordinal is the CUDA device ordinal inside the container; memory=0 and
// cores=0 mean "no limit". The file is mounted read-only.
const (
	LimitsHeader  = "mosaic-limits"
	LimitsVersion = 1
	// RunDir is the enforcer's directory in a container (MOSAIC_RUN_DIR in
	// native/src/config.h): the node agent mounts the limits file, the
	// shared accounting directory and the cards' regions under it.
	RunDir = "/run/mosaic"
	// LimitsPath is where the enforcer looks for the file in a container.
	LimitsPath = RunDir + "/limits.conf"
	// SharedDir is the per-container directory for the enforcer's shared
	// accounting file.
	SharedDir = RunDir + "/shared"
	// EnforcerPath is where the node agent mounts the enforcer library in
	// a container, and PreloadPath the file that makes the dynamic loader
	// load it into every process: unlike LD_PRELOAD, a process cannot
	// unset it for its children.
	EnforcerPath = "/usr/local/lib/mosaic/libmosaic-enforcer.so"
	PreloadPath  = "/etc/ld.so.preload"
)

// CorePolicy is HAMi's GPU_CORE_UTILIZATION_POLICY: when the compute limit
// applies.
type CorePolicy string

const (
	CorePolicyDefault CorePolicy = "default"
	CorePolicyForce   CorePolicy = "force"
	CorePolicyDisable CorePolicy = "disable"
)

// Limits is one container's limits file.
type Limits struct {
	Policy CorePolicy
	Cards  []CardLimit
}

// CardLimit is the limit on one card as the container sees it.
type CardLimit struct {
	Ordinal     int
	UUID        string
	MemoryBytes uint64
	Cores       int
}

// EncodeLimits renders the file; it validates first.
func EncodeLimits(l *Limits) (string, error) {
	if err := l.validate(); err != nil {
		return "", err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# Mosaic container limits. Written by the node agent; read by libmosaic-enforcer.\n%s %d\n", LimitsHeader, LimitsVersion)
	if l.Policy != "" {
		fmt.Fprintf(&b, "policy %s\n", l.Policy)
	}
	for _, c := range l.Cards {
		fmt.Fprintf(&b, "card %d %s memory=%d cores=%d\n", c.Ordinal, c.UUID, c.MemoryBytes, c.Cores)
	}
	return b.String(), nil
}

// DecodeLimits parses the file strictly, as the enforcer does: an unknown
// directive or key, a bad number or a duplicate card is an error with its
// line number.
func DecodeLimits(s string) (*Limits, error) {
	l := &Limits{}
	header := false
	sc := bufio.NewScanner(strings.NewReader(s))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if !header {
			if len(f) != 2 || f[0] != LimitsHeader || f[1] != strconv.Itoa(LimitsVersion) {
				return nil, fmt.Errorf("limits line %d: want %q, got %q", n, fmt.Sprintf("%s %d", LimitsHeader, LimitsVersion), line)
			}
			header = true
			continue
		}
		switch f[0] {
		case "policy":
			if len(f) != 2 {
				return nil, fmt.Errorf("limits line %d: policy takes one value", n)
			}
			l.Policy = CorePolicy(f[1])
		case "card":
			c, err := parseCardLine(f)
			if err != nil {
				return nil, fmt.Errorf("limits line %d: %w", n, err)
			}
			l.Cards = append(l.Cards, c)
		default:
			return nil, fmt.Errorf("limits line %d: unknown directive %q", n, f[0])
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if !header {
		return nil, fmt.Errorf("limits: missing %q header", LimitsHeader)
	}
	return l, l.validate()
}

func parseCardLine(f []string) (CardLimit, error) {
	var c CardLimit
	if len(f) != 5 {
		return c, fmt.Errorf("card wants: card <ordinal> <uuid> memory=<bytes> cores=<0-100>")
	}
	ord, err := strconv.ParseUint(f[1], 10, 16)
	if err != nil {
		return c, fmt.Errorf("card ordinal %q is not a small non-negative integer", f[1])
	}
	c.Ordinal, c.UUID = int(ord), f[2]
	seen := map[string]bool{}
	for _, kv := range f[3:] {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || seen[k] {
			return c, fmt.Errorf("card field %q: want key=value, each key once", kv)
		}
		seen[k] = true
		switch k {
		case "memory":
			if c.MemoryBytes, err = strconv.ParseUint(v, 10, 64); err != nil {
				return c, fmt.Errorf("card memory=%q is not a byte count", v)
			}
		case "cores":
			n, err := strconv.ParseUint(v, 10, 8)
			if err != nil {
				return c, fmt.Errorf("card cores=%q is not a percent", v)
			}
			c.Cores = int(n)
		default:
			return c, fmt.Errorf("card has unknown key %q", k)
		}
	}
	if !seen["memory"] || !seen["cores"] {
		return c, fmt.Errorf("card needs memory= and cores=")
	}
	return c, nil
}

func (l *Limits) validate() error {
	switch l.Policy {
	case "", CorePolicyDefault, CorePolicyForce, CorePolicyDisable:
	default:
		return fmt.Errorf("limits policy %q is not one of default, force, disable", l.Policy)
	}
	if len(l.Cards) > MaxCardsPerContainer {
		return fmt.Errorf("limits: %d cards, at most %d", len(l.Cards), MaxCardsPerContainer)
	}
	ords, uuids := map[int]bool{}, map[string]bool{}
	for _, c := range l.Cards {
		switch {
		case c.Ordinal < 0 || c.Ordinal >= MaxCardsPerContainer || ords[c.Ordinal]:
			return fmt.Errorf("limits card %d: ordinal must be unique and in 0..%d", c.Ordinal, MaxCardsPerContainer-1)
		case c.UUID == "" || strings.ContainsAny(c.UUID, " \t=") || uuids[c.UUID]:
			return fmt.Errorf("limits card %d: uuid %q must be unique, non-empty, without spaces or '='", c.Ordinal, c.UUID)
		case c.Cores < 0 || c.Cores > MaxCores:
			return fmt.Errorf("limits card %d: cores=%d must be in 0..%d", c.Ordinal, c.Cores, MaxCores)
		}
		ords[c.Ordinal], uuids[c.UUID] = true, true
	}
	return nil
}

// ContainerLimits derives a container's limits file from its allocation:
// its cards, in the order given, become CUDA ordinals 0..n-1. The node
// agent passes them in PCI bus order (InBusOrder), the order of the UUIDs
// it lists in NVIDIA_VISIBLE_DEVICES and the one CUDA numbers them in
// under CUDA_DEVICE_ORDER=PCI_BUS_ID.
func ContainerLimits(c *ContainerAllocation, policy CorePolicy) *Limits {
	l := &Limits{Policy: policy}
	for i, s := range c.Devices {
		l.Cards = append(l.Cards, CardLimit{Ordinal: i, UUID: s.UUID, MemoryBytes: uint64(s.MemoryMiB) << 20, Cores: s.Cores})
	}
	return l
}
