package cluster

import (
	"fmt"
	"os"
	"sync"

	"k8s.io/klog/v2"
)

// processTB lets the API server's test starter run outside `go test`: it
// implements the small testing.TB surface the starter uses, sending its log
// lines to klog at a high verbosity and turning a fatal error into a panic.
type processTB struct {
	dir      string
	mu       sync.Mutex
	cleanups []func()
	failed   bool
}

func newProcessTB(dir string) *processTB { return &processTB{dir: dir} }

func (t *processTB) Attr(string, string) {}
func (t *processTB) Chdir(string)        {}
func (t *processTB) Cleanup(f func()) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.cleanups = append(t.cleanups, f)
}
func (t *processTB) cleanup() {
	t.mu.Lock()
	fs := t.cleanups
	t.cleanups = nil
	t.mu.Unlock()
	for i := len(fs) - 1; i >= 0; i-- {
		fs[i]()
	}
}
func (t *processTB) Error(args ...any)                 { t.Log(args...); t.Fail() }
func (t *processTB) Errorf(format string, args ...any) { t.Logf(format, args...); t.Fail() }
func (t *processTB) Fail() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.failed = true
}
func (t *processTB) FailNow() { panic("kube-apiserver starter failed") }
func (t *processTB) Failed() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.failed
}
func (t *processTB) Fatal(args ...any)                 { panic(fmt.Sprint(args...)) }
func (t *processTB) Fatalf(format string, args ...any) { panic(fmt.Sprintf(format, args...)) }
func (t *processTB) Helper()                           {}
func (t *processTB) Log(args ...any)                   { klog.V(6).Info(fmt.Sprint(args...)) }
func (t *processTB) Logf(format string, args ...any)   { klog.V(6).Info(fmt.Sprintf(format, args...)) }
func (t *processTB) Name() string                      { return "mosaic-cluster" }
func (t *processTB) Setenv(k, v string)                { os.Setenv(k, v) }
func (t *processTB) Skip(...any)                       {}
func (t *processTB) Skipf(string, ...any)              {}
func (t *processTB) SkipNow()                          {}
func (t *processTB) Skipped() bool                     { return false }
func (t *processTB) TempDir() string {
	d, err := os.MkdirTemp(t.dir, "tmp-")
	if err != nil {
		panic(err)
	}
	return d
}
