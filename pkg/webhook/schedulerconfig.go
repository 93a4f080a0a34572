package webhook

import (
	"fmt"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/runtime"
	schedulerconfig "k8s.io/kubernetes/pkg/scheduler/apis/config"
	"k8s.io/kubernetes/pkg/scheduler/apis/config/scheme"

	"github.com/mosaic-gpu/mosaic/pkg/apis/config"
	"github.com/mosaic-gpu/mosaic/pkg/device"
)

// DefaultParseOptions reads requests as a scheduler whose profile gives the
// Mosaic plugin no args: the built-in Ascend models and no default shares.
func DefaultParseOptions() device.ParseOptions {
	args, err := config.DecodeMosaicArgs(nil)
	if err != nil {
		panic("the default Mosaic args do not validate: " + err.Error())
	}
	return args.ParseOptions()
}

// ReadSchedulerConfig takes the request parsing of Mosaic's scheduler from
// its KubeSchedulerConfiguration (the file its --config names): the file is
// decoded by kube-scheduler's own decoder, with its defaults, and each
// profile's Mosaic args by the plugin's (config.DecodeMosaicArgs), so that
// a model or default the scheduler is configured with is the webhook's
// too. Profiles gets every profile; ParseOptions, for pods naming another
// scheduler, that of SchedulerName, which must be one of them.
func (c *Config) ReadSchedulerConfig(data []byte) error {
	obj, gvk, err := scheme.Codecs.UniversalDecoder().Decode(data, nil, nil)
	if err != nil {
		return fmt.Errorf("scheduler config: %w", err)
	}
	sc, ok := obj.(*schedulerconfig.KubeSchedulerConfiguration)
	if !ok {
		return fmt.Errorf("scheduler config: want a KubeSchedulerConfiguration, got %s", gvk)
	}
	c.Profiles = map[string]device.ParseOptions{}
	for _, prof := range sc.Profiles {
		var raw runtime.Object
		for _, pc := range prof.PluginConfig {
			if pc.Name == config.PluginName {
				raw = pc.Args
			}
		}
		args, err := config.DecodeMosaicArgs(raw)
		if err != nil {
			return fmt.Errorf("scheduler config, profile %s: %w", prof.SchedulerName, err)
		}
		c.Profiles[prof.SchedulerName] = args.ParseOptions()
	}
	if c.SchedulerName == "" {
		return nil
	}
	opts, ok := c.Profiles[c.SchedulerName]
	if !ok {
		names := make([]string, 0, len(c.Profiles))
		for n := range c.Profiles {
			names = append(names, n)
		}
		slices.Sort(names)
		return fmt.Errorf("scheduler config has no profile %s, which device pods are routed to (it has %s)", c.SchedulerName, strings.Join(names, ", "))
	}
	c.ParseOptions = opts
	return nil
}
