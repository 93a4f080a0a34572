package mosaic

import (
	"sync/atomic"
)

// Every node's known fits, in one dense table.
//
// Filter and Score run for every device pod on some 400 of 1,000 nodes,
// and each read of a node's view, scattered over the heap, was a cache
// miss: it was most of what they cost once their answers were
// remembered. The fitting answers, those asked of nearly every node, are
// therefore also kept in a table indexed by the node's slot, which the
// map lookup that finds the view hands over with it (viewRef): 16 words
// per node, one per request number modulo 16, each the low bits of the
// view's generation, the request's number and the node's score for it. A
// Filter that finds its word passes the node, and Score returns the
// score, without reading the view. Publishing a view clears the node's
// words; a Filter that placed on a view published over meanwhile writes a
// word of the old generation, which no later reader takes and the next
// publish clears. Refusals, with their reasons, stay in the view's own
// memo (memo.go).

// A word: generation (8 bits: an old generation's word is cleared by the
// next publish, so it could pass for the current one only if 256 views
// were published during one Filter), request number (48), score (8: the
// framework's 0..100). 0 is no word.
const (
	fitWays      = 16
	fitGenShift  = 56
	fitIDShift   = 8
	fitScoreMask = 1<<8 - 1
	fitIDMask    = 1<<48 - 1
	fitGenMask   = 1<<8 - 1
)

func fitWord(ref viewRef, id uint64, score int64) uint64 {
	return uint64(ref.gen&fitGenMask)<<fitGenShift | id<<fitIDShift | uint64(score)
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

// knownFit returns the node's score for the request numbered id when its
// current view (ref) is known to fit it.
func (c *usageCache) knownFit(ref viewRef, id uint64) (int64, bool) {
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
	return int64(w & fitScoreMask), true
}

// rememberFit records that the view ref names fits the request numbered
// id, with the node's score for it.
func (c *usageCache) rememberFit(ref viewRef, id uint64, score int64) {
	if id == 0 || id > maxRequestID || score < 0 || score > fitScoreMask {
		return
	}
	if p := c.fits.Load().word(ref.slot, id); p != nil {
		atomic.StoreUint64(p, fitWord(ref, id, score))
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
