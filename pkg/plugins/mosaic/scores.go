package mosaic

import (
	"sync/atomic"

	v1 "k8s.io/api/core/v1"
)

// Filter leaves each fitting node's score for Score.
//
// Score rates the nodes Filter has just passed, on the views Filter has
// just read; but at 1,000 nodes a cycle reads some 400 views in between,
// and Score reading each again paid for it as much as Filter did. Filter
// has the view in hand, and the score of a fitting node in the same
// memo word as its verdict (or placed once), so it leaves the score in
// the node's slot of a dense table: Score finds the slot with the map
// lookup that finds the view, and never reads the view. A slot's word
// says which cycle wrote it and for which generation of the node's view:
// Score takes it only from its own cycle and only while that view is
// still the node's (a binding in between publishes a new one, which
// Score then reads as before).

// Bits of a slot's word: the cycle's stamp, the view's generation (its
// low bits) and the score.
const (
	slotStampShift = 32
	slotGenShift   = 16
	slotMask       = 1<<16 - 1
)

var stamps atomic.Uint32

// nextStamp numbers a cycle for the slots it writes; never 0, which no
// slot's word is stamped with.
func nextStamp() uint32 {
	for {
		if s := stamps.Add(1); s != 0 {
			return s
		}
	}
}

func slotWord(stamp, gen uint32, score int64) uint64 {
	return uint64(stamp)<<slotStampShift | uint64(gen&slotMask)<<slotGenShift | uint64(score)
}

// growScoresLocked gives every node entry a slot; the caller holds mu
// for writing. The table is replaced by a larger copy: a Filter still
// writing the old one loses its score, which Score then computes.
func (c *usageCache) growScoresLocked() {
	old := c.scores.Load()
	if old != nil && len(*old) >= len(c.nodes) {
		return
	}
	var n []uint64
	if old != nil {
		n = make([]uint64, len(*old), max(2*len(*old), 64))
		for i := range *old {
			n[i] = atomic.LoadUint64(&(*old)[i])
		}
	}
	for len(n) < len(c.nodes) {
		n = append(n, 0)
	}
	n = n[:cap(n)]
	c.scores.Store(&n)
}

// leaveScore records Filter's score for the view ref names, for the
// cycle stamped stamp. A score outside the framework's range is not left.
func (c *usageCache) leaveScore(ref viewRef, stamp uint32, score int64) {
	if ref.slot < 0 || stamp == 0 || score < 0 || score > slotMask {
		return
	}
	if t := c.scores.Load(); t != nil && int(ref.slot) < len(*t) {
		atomic.StoreUint64(&(*t)[ref.slot], slotWord(stamp, ref.gen, score))
	}
}

// filterScore returns the score this cycle's Filter left for the node's
// current view, if it left one.
func (c *usageCache) filterScore(node *v1.Node, stamp uint32) (int64, bool) {
	ref := c.viewOf(node)
	if ref.slot < 0 || stamp == 0 {
		return 0, false
	}
	t := c.scores.Load()
	if t == nil || int(ref.slot) >= len(*t) {
		return 0, false
	}
	w := atomic.LoadUint64(&(*t)[ref.slot])
	if w>>slotStampShift != uint64(stamp) || (w>>slotGenShift)&slotMask != uint64(ref.gen&slotMask) {
		return 0, false
	}
	return int64(w & slotMask), true
}
