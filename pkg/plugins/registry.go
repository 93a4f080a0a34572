// Package plugins lists the scheduler plugins Mosaic compiles into
// kube-scheduler, for the binary and for in-process runs alike.
package plugins

import (
	"k8s.io/kubernetes/cmd/kube-scheduler/app"

	"github.com/mosaic-gpu/mosaic/pkg/plugins/fit"
	"github.com/mosaic-gpu/mosaic/pkg/plugins/mosaic"
)

// Options registers Mosaic's plugins with the scheduler command.
func Options() []app.Option {
	return []app.Option{app.WithPlugin(mosaic.Name, mosaic.New), app.WithPlugin(fit.Name, fit.New)}
}
