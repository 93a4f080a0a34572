package mosaic

import (
	"context"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/mosaic-gpu/mosaic/pkg/device"
)

// The profiles of one scheduler share its informer factory and so one
// cache; another scheduler (another factory) has its own, and the cache is
// dropped when its scheduler's context ends.
func TestCacheSharedPerScheduler(t *testing.T) {
	defaults := device.NodeConfig{SplitCount: 10, MemoryScaling: 1, CoreScaling: 1}
	ctx, cancel := context.WithCancel(context.Background())
	f := informers.NewSharedInformerFactory(fake.NewClientset(), 0)
	a, err := cacheFor(ctx, f, "one", defaults)
	if err != nil {
		t.Fatal(err)
	}
	b, err := cacheFor(ctx, f, "two", defaults)
	if err != nil {
		t.Fatal(err)
	}
	if a.cache != b.cache {
		t.Error("two profiles of one scheduler keep two caches")
	}
	other, err := cacheFor(context.Background(), informers.NewSharedInformerFactory(fake.NewClientset(), 0), "one", defaults)
	if err != nil {
		t.Fatal(err)
	}
	if other.cache == a.cache {
		t.Error("two schedulers share one cache")
	}

	split := defaults
	split.SplitCount = 4
	if _, err := cacheFor(ctx, f, "three", split); err == nil || !strings.Contains(err.Error(), `profile "three"`) || !strings.Contains(err.Error(), "deviceSplitCount") {
		t.Errorf("profiles disagreeing on the node defaults: err = %v, want one naming the profile and deviceSplitCount", err)
	}

	cancel()
	err = wait.PollUntilContextTimeout(context.Background(), time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
		schedulerCaches.Lock()
		defer schedulerCaches.Unlock()
		return schedulerCaches.m[f] == nil, nil
	})
	if err != nil {
		t.Error("the cache outlived its scheduler's context")
	}
}
