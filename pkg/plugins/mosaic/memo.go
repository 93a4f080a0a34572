package mosaic

import (
	"strconv"
	"sync"

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

type answer struct {
	verdict placement.Verdict
	score   int64
	scored  bool
}

// answers is a view's memo, kept inline with the view and found by the
// request's number (requestID): a Filter or Score that finds its answer
// reads the view's first cache lines and nothing else of the node. Filter
// and Score of one cycle visit each node from one goroutine, but
// preemption's and the next cycle's may overlap the last: a mutex,
// uncontended, keeps it simple.
type answers struct {
	mu   sync.Mutex
	n    int // entries in use
	next int // the entry to replace once all are
	ids  [memoSize]uint64
	list [memoSize]answer
}

func (m *answers) find(id uint64) int {
	for i := range m.n {
		if m.ids[i] == id {
			return i
		}
	}
	return -1
}

// verdict returns Filter's remembered verdict for the request.
func (m *answers) verdict(id uint64) (placement.Verdict, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if i := m.find(id); i >= 0 {
		return m.list[i].verdict, true
	}
	return placement.Verdict{}, false
}

// score returns Score's remembered score for the request.
func (m *answers) score(id uint64) (int64, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if i := m.find(id); i >= 0 && m.list[i].scored {
		return m.list[i].score, true
	}
	return 0, false
}

func (m *answers) putVerdict(id uint64, v placement.Verdict) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if i := m.find(id); i >= 0 {
		m.list[i].verdict = v
		return
	}
	m.add(id, answer{verdict: v})
}

// putScore records a score; a score is only asked of a node that fits.
func (m *answers) putScore(id uint64, score int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if i := m.find(id); i >= 0 {
		m.list[i].score, m.list[i].scored = score, true
		return
	}
	m.add(id, answer{verdict: placement.Verdict{Fits: true}, score: score, scored: true})
}

func (m *answers) add(id uint64, a answer) {
	i := m.n
	if m.n < memoSize {
		m.n++
	} else {
		i, m.next = m.next, (m.next+1)%memoSize
	}
	m.ids[i], m.list[i] = id, a
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

func requestID(key string) uint64 {
	requestIDs.Lock()
	defer requestIDs.Unlock()
	if id, ok := requestIDs.ids[key]; ok {
		return id
	}
	if len(requestIDs.ids) >= maxRequestIDs {
		requestIDs.ids = map[string]uint64{}
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
