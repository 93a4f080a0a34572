package mosaic

import (
	"sync/atomic"

	"github.com/mosaic-gpu/mosaic/pkg/placement"
)

// Every node's known answers, in one dense table.
//
// Filter and Score run for every device pod on some 400 of 1,000 nodes
// (Filter on more when full nodes are passed over), and each read of a
// node's view, scattered over the heap, was a cache miss: it was most of
// what they cost once their answers were remembered. The answers are
// therefore also kept in a table indexed by the node's slot, which the
// map lookup that finds the view hands over with it (viewRef): 16 words
// per node, one per request number modulo 16, each the low bits of the
// view's generation, the request's number and the node's score for it
// or, when the node refuses the request, the refusal's number. A Filter
// that finds its word passes the node, or refuses it for the numbered
// reasons, and Score returns the score, without reading the view.
// Publishing a view clears the node's words; a Filter that placed on a
// view published over meanwhile writes a word of the old generation,
// which no later reader takes and the next publish clears. The view's
// own memo (memo.go) keeps the answers too, for the nodes and cycles
// that cannot take them from here.

// A word: generation (8 bits: an old generation's word is cleared by the
// next publish, so it could pass for the current one only if 256 views
// were published during one Filter), request number (47), whether the
// node refuses the request (1), then its score (the framework's 0..100)
// or, for a refusal, the refusal's number (refusals.go). 0 is no word.
const (
	fitWays      = 16
	fitGenShift  = 56
	fitIDShift   = 9
	fitRefused   = 1 << 8
	fitScoreMask = 1<<8 - 1
	fitIDMask    = 1<<47 - 1
	fitGenMask   = 1<<8 - 1
)

func fitWord(ref viewRef, id uint64, payload uint64) uint64 {
	return uint64(ref.gen&fitGenMask)<<fitGenShift | id<<fitIDShift | payload
}

// fitsTable is the table's words, slot by slot. It is replaced, never
// grown in place (growFitsLocked), so that Filter writes it without the
// cache's lock.
type fitsTable []uint64

func (t *fitsTable) word(slot int32, id uint64) *uint64 {
	if t == nil || slot < 0 {
		return nil
	}
	i := int(slot)*fitWays + int(id%fitWays)
	if i >= len(*t) {
		return nil
	}
	return &(*t)[i]
}

// known returns the node's word for the request numbered id when it was
// written for the node's current view (ref).
func (c *usageCache) known(ref viewRef, id uint64) (uint64, bool) {
	if id == 0 || id > maxRequestID {
		return 0, false
	}
	p := c.fits.Load().word(ref.slot, id)
	if p == nil {
		return 0, false
	}
	w := atomic.LoadUint64(p)
	if w>>fitIDShift&fitIDMask != id || w>>fitGenShift != uint64(ref.gen&fitGenMask) {
		return 0, false
	}
	return w, true
}

// knownFit returns the node's score for the request numbered id when its
// current view (ref) is known to fit it.
func (c *usageCache) knownFit(ref viewRef, id uint64) (int64, bool) {
	if w, ok := c.known(ref, id); ok && w&fitRefused == 0 {
		return int64(w & fitScoreMask), true
	}
	return 0, false
}

// knownRefusal returns why the node's current view (ref) is known to
// refuse the request numbered id.
func (c *usageCache) knownRefusal(ref viewRef, id uint64) (refusal, bool) {
	if w, ok := c.known(ref, id); ok && w&fitRefused != 0 {
		return c.refusals.get(w & fitScoreMask)
	}
	return refusal{}, false
}

// rememberFit records that the view ref names fits the request numbered
// id, with the node's score for it.
func (c *usageCache) rememberFit(ref viewRef, id uint64, score int64) {
	if id == 0 || id > maxRequestID || score < 0 || score > fitScoreMask {
		return
	}
	if p := c.fits.Load().word(ref.slot, id); p != nil {
		atomic.StoreUint64(p, fitWord(ref, id, uint64(score)))
	}
}

// rememberRefusal records that the view ref names refuses the request
// numbered id, and why; a refusal that cannot be numbered any more (the
// table is full) is not remembered.
func (c *usageCache) rememberRefusal(ref viewRef, id uint64, v placement.Verdict) {
	if id == 0 || id > maxRequestID || v.Fits {
		return
	}
	p := c.fits.Load().word(ref.slot, id)
	if p == nil {
		return
	}
	if n, ok := c.refusals.number(v); ok {
		atomic.StoreUint64(p, fitWord(ref, id, fitRefused|n))
	}
}

// clearFitsLocked forgets a node's known fits, for its new view; the
// caller holds mu for writing.
func (c *usageCache) clearFitsLocked(slot int32) {
	t := c.fits.Load()
	for way := range uint64(fitWays) {
		if p := t.word(slot, way); p != nil {
			atomic.StoreUint64(p, 0)
		}
	}
}

// growFitsLocked gives every node entry its words; the caller holds mu
// for writing. A Filter still writing the old table loses its word, which
// the next one writes again.
func (c *usageCache) growFitsLocked() {
	old := c.fits.Load()
	need := len(c.nodes) * fitWays
	if old != nil && len(*old) >= need {
		return
	}
	size := max(need, 64*fitWays)
	if old != nil {
		size = max(size, 2*len(*old))
	}
	t := make(fitsTable, size)
	if old != nil {
		for i := range *old {
			t[i] = atomic.LoadUint64(&(*old)[i])
		}
	}
	c.fits.Store(&t)
}
