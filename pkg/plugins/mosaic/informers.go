package mosaic

import (
	"context"
	"fmt"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"
)

// watch feeds the cache from the scheduler's node and pod informers. The
// scheduler's pod informer already leaves out finished pods, so a pod that
// succeeds or fails arrives here as a delete and releases its share.
func (p *Mosaic) watch(logger klog.Logger) error {
	f := p.handle.SharedInformerFactory()
	if f == nil {
		return fmt.Errorf("%s needs the scheduler's shared informer factory", Name)
	}
	nodes, err := f.Core().V1().Nodes().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { p.onNode(logger, obj) },
		UpdateFunc: func(_, obj any) { p.onNode(logger, obj) },
		DeleteFunc: func(obj any) {
			if n, ok := unwrap(obj).(*v1.Node); ok {
				p.cache.deleteNode(n.Name)
			}
		},
	})
	if err != nil {
		return err
	}
	pods, err := f.Core().V1().Pods().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { p.onPod(logger, obj) },
		UpdateFunc: func(_, obj any) { p.onPod(logger, obj) },
		DeleteFunc: func(obj any) {
			if pod, ok := unwrap(obj).(*v1.Pod); ok {
				p.cache.deletePod(pod.UID)
			}
		},
	})
	if err != nil {
		return err
	}
	p.synced = []cache.InformerSynced{nodes.HasSynced, pods.HasSynced}
	return nil
}

func (p *Mosaic) onNode(logger klog.Logger, obj any) {
	if n, ok := obj.(*v1.Node); ok {
		p.cache.setNode(logger, n)
	}
}

func (p *Mosaic) onPod(logger klog.Logger, obj any) {
	if pod, ok := obj.(*v1.Pod); ok {
		p.cache.updatePod(logger, pod)
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
