package agent

import (
	"context"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/clock"
)

// healthWatcher is implemented by backends that report health events.
// WatchHealth reports changes until ctx ends. An error it returns is its
// event source's, not a card's: the agent runs it again, with backoff,
// and a card it marked unhealthy stays so until it reports it healthy.
type healthWatcher interface {
	WatchHealth(ctx context.Context, report func(uuid string, healthy bool)) error
}

// healthRestart spaces the restarts of a failing health watcher: 1s, 2s,
// ... up to 2 minutes, from 1s again after 10 minutes.
var (
	healthRestart      = wait.Backoff{Duration: time.Second, Factor: 2, Jitter: 0.1, Steps: 8, Cap: 2 * time.Minute}
	healthRestartReset = 10 * time.Minute
)

// watchHealth runs w until ctx ends, restarting it whenever it stops.
// Between restarts health comes from discovery alone.
func (a *Agent) watchHealth(ctx context.Context, w healthWatcher) {
	delay := healthRestart.DelayWithReset(clock.RealClock{}, healthRestartReset)
	_ = delay.Until(ctx, true, true, func(ctx context.Context) (bool, error) {
		if err := w.WatchHealth(ctx, a.setHealth); ctx.Err() == nil {
			a.logger.Error(err, "Health watcher stopped; restarting it")
		}
		return false, nil
	})
}
