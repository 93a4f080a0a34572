// Package nodeindex finds what a plugin keeps for a node by the Node object
// that the scheduler's NodeInfo holds, without a lock or a map.
//
// Filter and Score run for a device pod on hundreds of nodes, and a
// plugin's per-node data, looked up in a map by the Node's pointer under a
// read lock, cost a few cache misses a lookup at 1,000 nodes (the map's
// directory, its group's control word, the slot) and the lock's shared
// counter moving between cores. An Index is one flat, open-addressed array
// of 32-byte slots: a lookup usually reads one slot. The informers never
// change a Node in place (a new version is a new object), so a plugin keys
// on the pointer; the scheduler's NodeInfo and the plugin's informer
// handler hold the same object.
//
// Readers never lock. A slot is written under a sequence counter (odd while
// a writer is in it), and every field is read atomically; a reader that
// sees the counter odd or changed reports the node absent, and the caller
// takes its locked path, which waits for the writer. Writers are
// serialized by the Index. The array is rebuilt, never grown in place, once
// deleted slots and live ones fill half of it; a reader still in the old
// array reads what was current when it began.
package nodeindex

import (
	"sync"
	"sync/atomic"
	"unsafe"

	v1 "k8s.io/api/core/v1"
)

// Index maps Node objects to a value (a pointer, read as set) and a word.
type Index[T any] struct {
	tab atomic.Pointer[table[T]]
	mu  sync.Mutex // writers
}

type table[T any] struct {
	slots []slot[T]
	mask  uint64
	// live and used (live and deleted) slots, written under the Index's mu.
	live, used int
}

type slot[T any] struct {
	seq  atomic.Uint64
	key  atomic.Pointer[v1.Node]
	val  atomic.Pointer[T]
	word atomic.Uint64
}

// deleted marks a slot whose node was removed: lookups probe past it.
var deleted = &v1.Node{}

const minSlots = 16

func hash(node *v1.Node) uint64 {
	h := uint64(uintptr(unsafe.Pointer(node)))
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	return h
}

// Get returns what was set for node, or ok false when node is not in the
// index or a writer is in its slot.
func (x *Index[T]) Get(node *v1.Node) (val *T, word uint64, ok bool) {
	t := x.tab.Load()
	if t == nil || node == nil {
		return nil, 0, false
	}
	for i := hash(node) & t.mask; ; i = (i + 1) & t.mask {
		s := &t.slots[i]
		seq := s.seq.Load()
		k := s.key.Load()
		val, word = s.val.Load(), s.word.Load()
		if seq&1 != 0 || s.seq.Load() != seq {
			return nil, 0, false
		}
		switch k {
		case node:
			return val, word, true
		case nil:
			return nil, 0, false
		}
	}
}

// Set records val and word for node.
func (x *Index[T]) Set(node *v1.Node, val *T, word uint64) {
	x.mu.Lock()
	defer x.mu.Unlock()
	t := x.tab.Load()
	if t == nil || 2*(t.used+1) > len(t.slots) {
		t = x.rebuildLocked(t, 1)
	}
	free := -1
	for i := hash(node) & t.mask; ; i = (i + 1) & t.mask {
		s := &t.slots[i]
		switch k := s.key.Load(); k {
		case node:
			write(s, node, val, word)
			return
		case deleted:
			if free < 0 {
				free = int(i)
			}
			continue
		case nil:
			if free < 0 {
				free = int(i)
				t.used++
			}
			t.live++
			write(&t.slots[free], node, val, word)
			return
		}
	}
}

// Delete forgets node.
func (x *Index[T]) Delete(node *v1.Node) {
	x.mu.Lock()
	defer x.mu.Unlock()
	t := x.tab.Load()
	if t == nil || node == nil {
		return
	}
	for i := hash(node) & t.mask; ; i = (i + 1) & t.mask {
		s := &t.slots[i]
		switch s.key.Load() {
		case node:
			write(s, deleted, nil, 0)
			t.live--
			return
		case nil:
			return
		}
	}
}

// Reset forgets every node.
func (x *Index[T]) Reset() {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.tab.Store(nil)
}

// Len returns the number of nodes in the index.
func (x *Index[T]) Len() int {
	x.mu.Lock()
	defer x.mu.Unlock()
	if t := x.tab.Load(); t != nil {
		return t.live
	}
	return 0
}

func write[T any](s *slot[T], key *v1.Node, val *T, word uint64) {
	s.seq.Add(1)
	s.key.Store(key)
	s.val.Store(val)
	s.word.Store(word)
	s.seq.Add(1)
}

// rebuildLocked publishes a new array holding old's live slots, with room
// for extra more at a quarter to a half full.
func (x *Index[T]) rebuildLocked(old *table[T], extra int) *table[T] {
	live := extra
	if old != nil {
		live += old.live
	}
	n := minSlots
	for n < 3*live {
		n *= 2
	}
	t := &table[T]{slots: make([]slot[T], n), mask: uint64(n - 1)}
	if old != nil {
		for i := range old.slots {
			s := &old.slots[i]
			k := s.key.Load()
			if k == nil || k == deleted {
				continue
			}
			j := hash(k) & t.mask
			for t.slots[j].key.Load() != nil {
				j = (j + 1) & t.mask
			}
			write(&t.slots[j], k, s.val.Load(), s.word.Load())
			t.live++
			t.used++
		}
	}
	x.tab.Store(t)
	return t
}
