package mosaic

import (
	"context"
	"fmt"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"
)

// watch feeds the cache from the scheduler's node and pod informers. The
// scheduler's pod informer already leaves out finished pods, so a pod that
// succeeds or fails arrives here as a delete and releases its share. Each
// handler receives its informer's events one at a time, in the order the
// API server wrote them.
func (c *usageCache) watch(logger klog.Logger, f informers.SharedInformerFactory) ([]cache.InformerSynced, error) {
	nodes, err := f.Core().V1().Nodes().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) {
			c.onNode(logger, obj)
			if n, ok := obj.(*v1.Node); ok {
				c.waker.nodeEvent(logger, nil, n)
			}
		},
		UpdateFunc: func(oldObj, obj any) {
			c.onNode(logger, obj)
			n, ok := obj.(*v1.Node)
			old, _ := oldObj.(*v1.Node)
			if ok {
				c.waker.nodeEvent(logger, old, n)
			}
		},
		DeleteFunc: func(obj any) {
			if n, ok := unwrap(obj).(*v1.Node); ok {
				c.deleteNode(n)
			}
		},
	})
	if err != nil {
		return nil, err
	}
	pods, err := f.Core().V1().Pods().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) {
			c.onPod(logger, obj)
			if pod, ok := obj.(*v1.Pod); ok {
				c.waker.podEvent(logger, nil, pod)
			}
		},
		UpdateFunc: func(oldObj, obj any) {
			c.onPod(logger, obj)
			pod, ok := obj.(*v1.Pod)
			old, _ := oldObj.(*v1.Pod)
			if ok {
				c.waker.podEvent(logger, old, pod)
			}
		},
		DeleteFunc: func(obj any) {
			if pod, ok := unwrap(obj).(*v1.Pod); ok {
				c.deletePod(pod.UID)
				c.pending.remove(pod.UID)
				c.waker.podDeleted(logger, pod)
			}
		},
	})
	if err != nil {
		return nil, err
	}
	return []cache.InformerSynced{nodes.HasSynced, pods.HasSynced}, nil
}

func (c *usageCache) onNode(logger klog.Logger, obj any) {
	if n, ok := obj.(*v1.Node); ok {
		c.setNode(logger, n)
	}
}

func (c *usageCache) onPod(logger klog.Logger, obj any) {
	if pod, ok := obj.(*v1.Pod); ok {
		c.updatePod(logger, pod)
		c.pending.update(pod)
	}
}

func unwrap(obj any) any {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		return t.Obj
	}
	return obj
}

// waitSynced holds the first cycles until the cache has seen every node
// and pod, so that a restarted scheduler never places on stale state.
func (p *Mosaic) waitSynced(ctx context.Context) *fwk.Status {
	synced := true
	for _, s := range p.synced {
		synced = synced && s()
	}
	if synced {
		return nil
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if !cache.WaitForCacheSync(wctx.Done(), p.synced...) {
		return fwk.AsStatus(fmt.Errorf("%s: device cache not synced", Name))
	}
	return nil
}
