// Package placement decides which cards of one node a pod's containers get.
// It is pure: a node's cards and their usage in, an allocation or the
// reasons it does not fit out. The scheduler plugin is a thin adapter over it.
package placement
