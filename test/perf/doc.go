// Package perf runs Mosaic in upstream's scheduler benchmark harness,
// k8s.io/kubernetes/test/integration/scheduler_perf, so that its figures
// read like upstream's: SchedulingThroughput (pods bound per second,
// sampled every second while the pods are created) and the scheduler's own
// latency histograms, for the same workloads run by the stock
// kube-scheduler and by Mosaic replacing it.
//
// performance-config.yaml holds Mosaic's workloads in upstream's format;
// upstream's own SchedulingBasic, pod (anti-)affinity and topology
// spreading test cases are read from the module and run twice, as they are
// and with Mosaic's profile. make bench runs them; docs/performance.md has
// the figures and how to read them.
package perf
