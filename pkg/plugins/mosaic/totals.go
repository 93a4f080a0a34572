package mosaic

// The cache's totals for the metrics: the cards by vendor and model and
// what is allocated of them, and the pods assumed and bound. A scrape
// walked every card of every node and every pod under the cache's read
// lock, which at 5,000 nodes held Reserve and the informer handlers off for
// tens of milliseconds a scrape; the totals are kept as the views are
// published and the pods linked instead, under the write lock those
// already hold, and a scrape copies them.

type modelKey struct{ vendor, model string }

type modelTotals struct {
	cards, allocCards, shares, cores int
	memory, allocMemory              int64
}

// add adds t, times sign (1 or -1).
func (m *modelTotals) add(t modelTotals, sign int) {
	m.cards += sign * t.cards
	m.allocCards += sign * t.allocCards
	m.shares += sign * t.shares
	m.cores += sign * t.cores
	m.memory += int64(sign) * t.memory
	m.allocMemory += int64(sign) * t.allocMemory
}

// modelSum is one view's part of the totals; a node's cards are nearly
// always of one model, so a short list.
type modelSum struct {
	key modelKey
	modelTotals
}

// sumCards returns what the view's cards add to the totals.
func (v *nodeView) sumCards() []modelSum {
	var out []modelSum
	for i := range v.node.Cards {
		card := &v.node.Cards[i]
		k := modelKey{string(card.Device.Vendor), card.Device.Model}
		j := 0
		for j < len(out) && out[j].key != k {
			j++
		}
		if j == len(out) {
			out = append(out, modelSum{key: k})
		}
		t := &out[j].modelTotals
		t.cards++
		t.memory += card.Capacity.MemoryMiB
		if card.Used.Slots > 0 {
			t.allocCards++
		}
		t.shares += card.Used.Slots
		t.allocMemory += card.Used.MemoryMiB
		t.cores += card.Used.Cores
	}
	return out
}

// cacheTotals is what the collector reports; written under the cache's
// write lock.
type cacheTotals struct {
	models         map[modelKey]*modelTotals
	assumed, bound int
}

// replaceView moves a node's part of the totals from its old view's cards
// to the new one's.
func (t *cacheTotals) replaceView(old, cur []modelSum) {
	if t.models == nil {
		t.models = map[modelKey]*modelTotals{}
	}
	for _, s := range old {
		m := t.models[s.key]
		m.add(s.modelTotals, -1)
		if m.cards == 0 {
			delete(t.models, s.key)
		}
	}
	for _, s := range cur {
		m := t.models[s.key]
		if m == nil {
			m = &modelTotals{}
			t.models[s.key] = m
		}
		m.add(s.modelTotals, 1)
	}
}

// countPod counts a pod entry linked (n 1) or unlinked (n -1).
func (t *cacheTotals) countPod(e *podEntry, n int) {
	if e.assumed {
		t.assumed += n
	} else {
		t.bound += n
	}
}

// totals returns a copy of the cache's totals.
func (c *usageCache) totals() (models map[modelKey]modelTotals, assumed, bound int) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	models = make(map[modelKey]modelTotals, len(c.sums.models))
	for k, t := range c.sums.models {
		models[k] = *t
	}
	return models, c.sums.assumed, c.sums.bound
}
