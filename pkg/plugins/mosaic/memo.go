package mosaic

import (
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/mosaic-gpu/mosaic/pkg/device"
	"github.com/mosaic-gpu/mosaic/pkg/placement"
)

// A node's view never changes once built, and Filter's verdict and Score's
// score on it depend on the pod's device request and node policy alone
// (requestKey), so each view remembers what it answered for the last few
// requests. Between two bindings only the bound pod's node gets a new
// view: the next pods, alike or not, find the other nodes' answers there
// instead of placing again, which a 1,000-node cluster asked for on every
// node of every cycle. Adjusted nodes (preemption's dry runs, pod-group
// cycles) are placed anew, never remembered.

// memoSize bounds the requests a view remembers: enough for a mix of
// several kinds of pods arriving interleaved.
const memoSize = 16

// An answer is packed in one word, so that finding it reads the memo's
// 128 bytes and nothing else, without a lock: the request's number in
// the top 48 bits, then what is known of it, then the score (0..100).
// 0 is no answer (requests are numbered from 1).
const (
	answerKnown        = 1 << 8 // the verdict is known
	answerFits         = 1 << 9
	answerUnresolvable = 1 << 10
	answerScored       = 1 << 11 // the low 8 bits hold the score
	answerIDShift      = 16
	answerScoreMask    = 1<<8 - 1
)

// answers is a view's memo, kept inline with the view and found by the
// request's number (requestID). A node that fits, the answer asked of
// nearly every node, is read from the words alone; a refusal's reasons,
// which only a node that does not fit needs, are kept beside them and
// read under the mutex that every writer holds, so a reader never pairs
// one answer's word with another's reasons. Filter and Score of one cycle
// visit each node from one goroutine, but preemption's and the next
// cycle's may overlap the last.
type answers struct {
	words   [memoSize]atomic.Uint64
	mu      sync.Mutex
	next    int // the entry to replace once all are in use
	reasons [memoSize][]string
}

func (m *answers) find(id uint64) (uint64, int) {
	for i := range m.words {
		if w := m.words[i].Load(); w>>answerIDShift == id {
			return w, i
		}
	}
	return 0, -1
}

// verdict returns Filter's remembered verdict for the request.
func (m *answers) verdict(id uint64) (placement.Verdict, bool) {
	w, i := m.find(id)
	switch {
	case i < 0 || w&answerKnown == 0:
		return placement.Verdict{}, false
	case w&answerFits != 0:
		return placement.Verdict{Fits: true}, true
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if w, i = m.find(id); i < 0 || w&answerKnown == 0 {
		return placement.Verdict{}, false // replaced meanwhile
	}
	return placement.Verdict{Fits: w&answerFits != 0, Unresolvable: w&answerUnresolvable != 0, Reasons: m.reasons[i]}, true
}

// score returns Score's remembered score for the request.
func (m *answers) score(id uint64) (int64, bool) {
	if w, i := m.find(id); i >= 0 && w&answerScored != 0 {
		return int64(w & answerScoreMask), true
	}
	return 0, false
}

func (m *answers) putVerdict(id uint64, v placement.Verdict) {
	m.mu.Lock()
	defer m.mu.Unlock()
	w, i := m.find(id)
	if i < 0 {
		w, i = id<<answerIDShift, m.free()
	}
	w &^= answerFits | answerUnresolvable
	w |= answerKnown
	if v.Fits {
		w |= answerFits
	}
	if v.Unresolvable {
		w |= answerUnresolvable
	}
	m.reasons[i] = v.Reasons
	m.words[i].Store(w)
}

// putScore records a score; a score is only asked of a node that fits.
// A score outside the framework's range is not remembered.
func (m *answers) putScore(id uint64, score int64) {
	if score < 0 || score > answerScoreMask {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	w, i := m.find(id)
	if i < 0 {
		w, i = id<<answerIDShift|answerKnown|answerFits, m.free()
		m.reasons[i] = nil
	}
	m.words[i].Store(w&^answerScoreMask | answerScored | uint64(score))
}

// free picks the entry for a new answer: an unused one, or the oldest.
// The caller holds mu.
func (m *answers) free() int {
	for i := range m.words {
		if m.words[i].Load() == 0 {
			return i
		}
	}
	i := m.next
	m.next = (m.next + 1) % memoSize
	return i
}

// verdict is placement.Check of the request numbered id on the view as it
// is, from the memo or placed and remembered.
func (v *nodeView) verdict(id uint64, req *device.PodRequest, opts placement.Options) placement.Verdict {
	if verdict, known := v.memo.verdict(id); known {
		return verdict
	}
	verdict := placement.Check(&v.node, req, opts)
	v.memo.putVerdict(id, verdict)
	return verdict
}

// score is placement.ScoreFit of the request numbered id on the view as
// it is, under the node policy, from the memo or scored and remembered.
func (v *nodeView) score(id uint64, req *device.PodRequest, opts placement.Options, policy device.Policy) int64 {
	if score, known := v.memo.score(id); known {
		return score
	}
	score, _ := placement.ScoreFit(&v.node, req, opts, policy)
	v.memo.putScore(id, score)
	return score
}

// requestIDs numbers the distinct request keys, so that a memo compares
// numbers, not strings. Numbers are never reused: when the table has
// grown past its bound it starts afresh, and the views' answers under the
// old numbers are simply never found again. 0 is no request.
var requestIDs = struct {
	sync.Mutex
	ids  map[string]uint64
	last uint64
}{ids: map[string]uint64{}}

// maxRequestIDs bounds the table: far more kinds of device pods than a
// cluster has pending at once.
const maxRequestIDs = 4096

// maxRequestID is the largest number the memo's words (48 bits) and the
// known answers' (47, fits.go) hold: at a thousand new request keys a
// second, thousands of years of them.
const maxRequestID = 1<<47 - 1

func requestID(key string) uint64 {
	requestIDs.Lock()
	defer requestIDs.Unlock()
	if id, ok := requestIDs.ids[key]; ok {
		return id
	}
	if len(requestIDs.ids) >= maxRequestIDs {
		requestIDs.ids = map[string]uint64{}
	}
	if requestIDs.last == maxRequestID {
		return 0 // numbers are spent (after years of new keys): remember nothing
	}
	requestIDs.last++
	requestIDs.ids[key] = requestIDs.last
	return requestIDs.last
}

// requestKey is what placement's answers depend on: every field of the
// request but the containers' names (which only label the allocation),
// the profile's placement options (profiles share the cache) and the node
// policy in force.
func requestKey(req *device.PodRequest, opts placement.Options, policy device.Policy) string {
	b := make([]byte, 0, 96)
	str := func(s string) { b = strconv.AppendQuote(b, s) }
	num := func(v int64) { b = strconv.AppendInt(append(b, ' '), v, 10) }
	str(string(opts.GPUPolicy))
	str(string(opts.NUMA))
	str(string(policy))
	for i := range req.Containers {
		c := &req.Containers[i]
		b = append(b, '[')
		b = strconv.AppendBool(b, c.Init)
		str(string(c.Vendor))
		str(c.Model)
		num(int64(c.Count))
		num(c.MemoryMiB)
		num(int64(c.MemoryPercent))
		num(int64(c.Cores))
		str(c.Template)
		b = append(b, ']')
	}
	for _, l := range [][]string{req.Selector.UseTypes, req.Selector.NoUseTypes, req.Selector.UseUUIDs, req.Selector.NoUseUUIDs} {
		b = append(b, '(')
		for _, s := range l {
			str(s)
		}
		b = append(b, ')')
	}
	b = strconv.AppendBool(b, req.NUMABind)
	str(string(req.GPUPolicy))
	str(string(req.Topology))
	return string(b)
}
