package nodeindex

import (
	"fmt"
	"sync"
	"testing"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

type rec struct {
	node *v1.Node
	word uint64
}

func nodes(n int) []*v1.Node {
	out := make([]*v1.Node, n)
	for i := range out {
		out[i] = &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("n%d", i)}}
	}
	return out
}

// Set, update, Delete and Reset, through enough nodes and replacements to
// rebuild the array several times and reuse deleted slots.
func TestIndex(t *testing.T) {
	var x Index[rec]
	if _, _, ok := x.Get(&v1.Node{}); ok {
		t.Fatal("an empty index found a node")
	}
	ns := nodes(1000)
	for i, n := range ns {
		x.Set(n, &rec{node: n, word: uint64(i)}, uint64(i))
	}
	for i, n := range ns {
		val, word, ok := x.Get(n)
		if !ok || val.node != n || word != uint64(i) {
			t.Fatalf("node %d: %v %d %v", i, val, word, ok)
		}
	}
	if _, _, ok := x.Get(&v1.Node{}); ok {
		t.Fatal("found a node never set")
	}
	// Every node replaced by a new object ten times, as node updates do.
	for round := 1; round <= 10; round++ {
		for i, old := range ns {
			n := old.DeepCopy()
			x.Delete(old)
			x.Set(n, &rec{node: n, word: uint64(round)}, uint64(round))
			ns[i] = n
			if _, _, ok := x.Get(old); ok {
				t.Fatalf("round %d: node %d's old object still found", round, i)
			}
		}
	}
	if x.Len() != len(ns) {
		t.Fatalf("Len %d, want %d", x.Len(), len(ns))
	}
	if slots := len(x.tab.Load().slots); slots > 8*len(ns) {
		t.Fatalf("%d slots for %d nodes after the replacements", slots, len(ns))
	}
	x.Set(ns[0], &rec{node: ns[0], word: 99}, 99)
	if val, word, ok := x.Get(ns[0]); !ok || val.word != 99 || word != 99 {
		t.Fatalf("update in place: %v %d %v", val, word, ok)
	}
	if x.Len() != len(ns) {
		t.Fatalf("Len %d after an update, want %d", x.Len(), len(ns))
	}
	x.Reset()
	if _, _, ok := x.Get(ns[0]); ok || x.Len() != 0 {
		t.Fatal("a node found after Reset")
	}
}

// Readers racing a writer that updates, replaces and deletes nodes (and so
// rebuilds the array) only ever see a value with the word it was set with,
// for the node they asked for, or nothing. Readers and the writer start
// together behind a barrier; the assertions hold whatever the interleaving.
func TestIndexReadersSeeWholeSlots(t *testing.T) {
	var x Index[rec]
	ns := nodes(64)
	for _, n := range ns {
		x.Set(n, &rec{node: n}, 0)
	}
	const readers, rounds = 4, 2000
	var start, done sync.WaitGroup
	start.Add(1)
	errs := make(chan error, readers)
	for r := range readers {
		done.Add(1)
		go func() {
			defer done.Done()
			start.Wait()
			for i := range rounds * len(ns) {
				n := ns[(i*7+r)%len(ns)]
				val, word, ok := x.Get(n)
				if ok && (val.node != n || val.word != word) {
					errs <- fmt.Errorf("node %s: value of %s with word %d, slot word %d", n.Name, val.node.Name, val.word, word)
					return
				}
			}
		}()
	}
	done.Add(1)
	go func() {
		defer done.Done()
		start.Wait()
		extra := nodes(len(ns))
		for w := uint64(1); w <= rounds; w++ {
			for i, n := range ns {
				x.Set(n, &rec{node: n, word: w}, w)
				// Churn others so that slots are deleted, reused and the
				// array rebuilt under the readers.
				e := extra[i]
				x.Set(e, &rec{node: e, word: w}, w)
				x.Delete(e)
				extra[i] = e.DeepCopy()
			}
		}
	}()
	start.Done()
	done.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
