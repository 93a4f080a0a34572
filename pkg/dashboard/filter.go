package dashboard

import (
	"slices"
	"strings"
)

// filter is the page's search (q: any of the names) and its filters by
// node, model, namespace and pod: case-insensitive substrings, all of
// which must match.
type filter struct {
	q, node, model, namespace, pod string
}

func newFilter(q, node, model, namespace, pod string) filter {
	l := func(s string) string { return strings.ToLower(strings.TrimSpace(s)) }
	return filter{l(q), l(node), l(model), l(namespace), l(pod)}
}

func has(s, sub string) bool { return sub == "" || strings.Contains(strings.ToLower(s), sub) }

// keepNode keeps a node when its name, one of its cards' models and one of
// its holders match; the search matches any of them.
func (f filter) keepNode(n *NodeView) bool {
	if !has(n.Name, f.node) {
		return false
	}
	model, holder, q := f.model == "", f.namespace == "" && f.pod == "", f.q == "" || has(n.Name, f.q)
	for _, c := range n.Cards {
		model = model || has(c.Model, f.model)
		q = q || has(c.Model, f.q) || has(c.UUID, f.q)
		for _, h := range c.Holders {
			holder = holder || (has(h.Namespace, f.namespace) && has(h.Pod, f.pod))
			q = q || has(h.Namespace, f.q) || has(h.Pod, f.q)
		}
	}
	return model && holder && q
}

// keepPod keeps a bound pod by its names, node and cards' models.
func (f filter) keepPod(p *PodView) bool {
	if !has(p.Namespace, f.namespace) || !has(p.Name, f.pod) || !has(p.Node, f.node) {
		return false
	}
	var models []string
	for _, c := range p.Containers {
		for _, d := range c.Cards {
			models = append(models, d.Model)
		}
	}
	matchModel := func(sub string) bool {
		return slices.ContainsFunc(models, func(m string) bool { return has(m, sub) })
	}
	return (f.model == "" || matchModel(f.model)) &&
		(f.q == "" || has(p.Namespace, f.q) || has(p.Name, f.q) || has(p.Node, f.q) || matchModel(f.q))
}

// keepPending keeps a waiting pod by its names and what it asks for; it has
// no node, so the node filter leaves it out only when set.
func (f filter) keepPending(p *PendingPod) bool {
	return f.node == "" && has(p.Namespace, f.namespace) && has(p.Name, f.pod) && has(p.Request, f.model) &&
		(f.q == "" || has(p.Namespace, f.q) || has(p.Name, f.q) || has(p.Request, f.q) || has(p.Reason, f.q))
}

// namespaces lists the namespaces of the device pods, for the filter.
func (s *snapshot) namespaces() []string {
	seen := map[string]bool{}
	for _, p := range s.pods {
		seen[p.Namespace] = true
	}
	for _, p := range s.pending {
		seen[p.Namespace] = true
	}
	out := make([]string, 0, len(seen))
	for ns := range seen {
		out = append(out, ns)
	}
	slices.Sort(out)
	return out
}
