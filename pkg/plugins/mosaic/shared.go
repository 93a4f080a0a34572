package mosaic

import (
	"context"
	"fmt"
	"sync"

	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"

	"github.com/mosaic-gpu/mosaic/pkg/device"
)

// A scheduler keeps one book of the cards, however many of its profiles
// enable Mosaic. Each profile gets its own plugin instance, yet all of them
// place pods on the same cards: with a cache each, a profile would not see
// what another one has assumed but not bound yet, and could book a card
// twice. The profiles of one scheduler share its informer factory, so the
// cache is kept per factory: several schedulers in one process (a restart
// in a test) each get their own. It lives as long as the context that New
// was given, the scheduler's.
var schedulerCaches = struct {
	sync.Mutex
	m map[informers.SharedInformerFactory]*sharedCache
}{m: map[informers.SharedInformerFactory]*sharedCache{}}

type sharedCache struct {
	cache  *usageCache
	synced []cache.InformerSynced
	// profiles and parseOpts let the metrics count the pods still waiting
	// for this scheduler's Mosaic profiles.
	mu        sync.Mutex
	profiles  map[string]bool
	parseOpts device.ParseOptions
}

// join records a profile that places pods with this cache.
func (s *sharedCache) join(profile string, opts device.ParseOptions) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.profiles == nil {
		s.profiles = map[string]bool{}
		s.parseOpts = opts
	}
	s.profiles[profile] = true
}

// cacheFor returns the cache of the scheduler whose informer factory is f,
// creating it and registering its informer handlers on first use. The
// profiles must agree on the node defaults, which decide what a card
// offers.
func cacheFor(ctx context.Context, f informers.SharedInformerFactory, profile string, defaults device.NodeConfig) (*sharedCache, error) {
	if f == nil {
		return nil, fmt.Errorf("%s needs the scheduler's shared informer factory", Name)
	}
	schedulerCaches.Lock()
	defer schedulerCaches.Unlock()
	if s := schedulerCaches.m[f]; s != nil {
		if s.cache.defaults != defaults {
			return nil, fmt.Errorf("profile %q: %s args deviceSplitCount, deviceMemoryScaling and deviceCoreScaling must be the same in every profile that enables %s, as the profiles share the cards: got %+v, another profile has %+v",
				profile, Name, Name, defaults, s.cache.defaults)
		}
		return s, nil
	}
	c := newUsageCache(defaults)
	synced, err := c.watch(klog.FromContext(ctx), f)
	if err != nil {
		return nil, err
	}
	s := &sharedCache{cache: c, synced: synced}
	schedulerCaches.m[f] = s
	context.AfterFunc(ctx, func() {
		schedulerCaches.Lock()
		defer schedulerCaches.Unlock()
		if schedulerCaches.m[f] == s {
			delete(schedulerCaches.m, f)
		}
	})
	return s, nil
}
