package dashboard

import (
	"context"
	"fmt"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/klog/v2"

	"github.com/mosaic-gpu/mosaic/pkg/apis/config"
	"github.com/mosaic-gpu/mosaic/pkg/device"
)

// WatchCluster is a Source over shared informers of cs, started and synced
// before it returns; they run until ctx ends. Requests are read with the
// scheduler's built-in args, nodes without a sharing config with
// defaults.
func WatchCluster(ctx context.Context, cs kubernetes.Interface, defaults device.NodeConfig) (Source, error) {
	args, err := config.DecodeMosaicArgs(nil)
	if err != nil {
		return Source{}, err
	}
	f := informers.NewSharedInformerFactory(cs, 0)
	nodes, pods := f.Core().V1().Nodes().Lister(), f.Core().V1().Pods().Lister()
	f.Start(ctx.Done())
	for typ, ok := range f.WaitForCacheSync(ctx.Done()) {
		if !ok {
			return Source{}, fmt.Errorf("listing %v for the dashboard did not complete", typ)
		}
	}
	return Source{
		Nodes: func() []*v1.Node {
			l, err := nodes.List(labels.Everything())
			if err != nil {
				klog.ErrorS(err, "Listing nodes")
			}
			return l
		},
		Pods: func() []*v1.Pod {
			l, err := pods.List(labels.Everything())
			if err != nil {
				klog.ErrorS(err, "Listing pods")
			}
			return l
		},
		Defaults: defaults,
		Parse:    args.ParseOptions(),
	}, nil
}
