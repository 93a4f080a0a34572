package config

import (
	"bytes"
	"encoding/json"
	"fmt"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/mosaic-gpu/mosaic/pkg/device"
)

// PluginName is the plugin's name in KubeSchedulerConfiguration.
const PluginName = "Mosaic"

// DecodeMosaicArgs reads the plugin's args as kube-scheduler hands them to
// out-of-tree plugins (raw JSON; nil when the profile gives none), sets the
// defaults and validates them. An unknown field is an error, so that a typo
// in the config fails the start instead of being silently ignored. The
// scheduler plugin and the admission webhook both read the args through
// it, so that they parse requests alike.
func DecodeMosaicArgs(obj runtime.Object) (*MosaicArgs, error) {
	args := &MosaicArgs{}
	switch o := obj.(type) {
	case nil:
	case *runtime.Unknown:
		if len(o.Raw) > 0 {
			dec := json.NewDecoder(bytes.NewReader(o.Raw))
			dec.DisallowUnknownFields()
			if err := dec.Decode(args); err != nil {
				return nil, fmt.Errorf("%s args: %w", PluginName, err)
			}
		}
	case *MosaicArgs:
		*args = *o
	default:
		return nil, fmt.Errorf("want args to be of type MosaicArgs, got %T", obj)
	}
	SetDefaultsMosaicArgs(args)
	if err := ValidateMosaicArgs(field.NewPath("pluginConfig", PluginName, "args"), args); err != nil {
		return nil, err
	}
	return args, nil
}

// ParseOptions are the args a pod's device request is read with.
func (a *MosaicArgs) ParseOptions() device.ParseOptions {
	return device.ParseOptions{DefaultMemoryMiB: a.DefaultMemoryMiB, DefaultCores: a.DefaultCores, AscendModels: a.AscendModels}
}
