package mosaic

import (
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	fwk "k8s.io/kube-scheduler/framework"

	"github.com/mosaic-gpu/mosaic/pkg/placement"
)

// Filter's refusals, numbered, so that a node's known refusal fits in its
// word of the known-answers table (fits.go). A node refuses the pods of a
// kind for one of a few sets of reasons (placement's reason lists), the
// same on every node whose cards are taken, so a handful of numbers
// covers a cluster; the table holds 256, and once they are spent a new
// refusal is simply not remembered there (the view's memo still holds it).
// Numbers are never reused, so a word always names the refusal it was
// written for.

// maxRefusals is how many refusals a word can number (its score bits).
const maxRefusals = fitScoreMask + 1

// refusal is one of Filter's refusals: its code and reasons.
type refusal struct {
	unresolvable bool
	// reasons are shared by every status made of this refusal; their
	// capacity is their length, so that appending to them copies.
	reasons []string
}

// status is the refusal as Filter returns it.
func (r refusal) status() *fwk.Status {
	code := fwk.Unschedulable
	if r.unresolvable {
		code = fwk.UnschedulableAndUnresolvable
	}
	return fwk.NewStatus(code, r.reasons...)
}

// refusals numbers refusals. Filter reads the list without a lock: it is
// replaced, never changed in place.
type refusals struct {
	mu   sync.Mutex
	ids  map[string]uint64
	list atomic.Pointer[[]refusal]
}

// number returns the refusal's number, giving it one if it has none;
// false once the numbers are spent.
func (r *refusals) number(v placement.Verdict) (uint64, bool) {
	key := refusalKey(v)
	r.mu.Lock()
	defer r.mu.Unlock()
	if n, ok := r.ids[key]; ok {
		return n, true
	}
	var old []refusal
	if l := r.list.Load(); l != nil {
		old = *l
	}
	if len(old) >= maxRefusals {
		return 0, false
	}
	reasons := append([]string(nil), v.Reasons...)
	l := append(append(make([]refusal, 0, len(old)+1), old...), refusal{unresolvable: v.Unresolvable, reasons: reasons[:len(reasons):len(reasons)]})
	if r.ids == nil {
		r.ids = map[string]uint64{}
	}
	n := uint64(len(old))
	r.ids[key] = n
	r.list.Store(&l)
	return n, true
}

// get returns the refusal numbered n.
func (r *refusals) get(n uint64) (refusal, bool) {
	l := r.list.Load()
	if l == nil || n >= uint64(len(*l)) {
		return refusal{}, false
	}
	return (*l)[n], true
}

func refusalKey(v placement.Verdict) string {
	var b strings.Builder
	b.WriteString(strconv.FormatBool(v.Unresolvable))
	for _, r := range v.Reasons {
		b.WriteByte(0)
		b.WriteString(r)
	}
	return b.String()
}
