package config

import (
	"fmt"

	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/mosaic-gpu/mosaic/pkg/device"
	"github.com/mosaic-gpu/mosaic/pkg/placement"
)

// ValidateMosaicArgs checks defaulted args; each error names the field
// under path and the accepted values.
func ValidateMosaicArgs(path *field.Path, args *MosaicArgs) error {
	var errs field.ErrorList
	policies := []string{string(device.PolicyBinpack), string(device.PolicySpread)}
	if _, err := device.ParsePolicy(string(args.NodePolicy)); err != nil {
		errs = append(errs, field.NotSupported(path.Child("nodePolicy"), args.NodePolicy, policies))
	}
	if _, err := device.ParsePolicy(string(args.GPUPolicy)); err != nil {
		errs = append(errs, field.NotSupported(path.Child("gpuPolicy"), args.GPUPolicy, policies))
	}
	switch placement.NUMAPolicy(args.NUMAPolicy) {
	case placement.NUMANone, placement.NUMABestEffort, placement.NUMASingle:
	default:
		errs = append(errs, field.NotSupported(path.Child("numaPolicy"), args.NUMAPolicy,
			[]string{string(placement.NUMANone), string(placement.NUMABestEffort), string(placement.NUMASingle)}))
	}
	if args.DeviceSplitCount < 1 || args.DeviceSplitCount > device.MaxSplitCount {
		errs = append(errs, field.Invalid(path.Child("deviceSplitCount"), args.DeviceSplitCount, fmt.Sprintf("must be in 1..%d", device.MaxSplitCount)))
	}
	for name, v := range map[string]float64{"deviceMemoryScaling": args.DeviceMemoryScaling, "deviceCoreScaling": args.DeviceCoreScaling} {
		if !(v >= 0.01 && v <= device.MaxScaling) {
			errs = append(errs, field.Invalid(path.Child(name), v, fmt.Sprintf("must be in 0.01..%v", device.MaxScaling)))
		}
	}
	if args.DefaultMemoryMiB < 0 {
		errs = append(errs, field.Invalid(path.Child("defaultMemoryMiB"), args.DefaultMemoryMiB, "must be >= 0 (0 = the whole card)"))
	}
	if args.DefaultCores < 0 || args.DefaultCores > device.MaxCores {
		errs = append(errs, field.Invalid(path.Child("defaultCores"), args.DefaultCores, fmt.Sprintf("must be in 0..%d", device.MaxCores)))
	}
	if args.UnsignedAllocations && args.AllocationKeyFile != "" {
		errs = append(errs, field.Invalid(path.Child("unsignedAllocations"), true, "allocationKeyFile is set too: set one"))
	}
	if err := device.ValidateAscendModels(path.Child("ascendModels").String(), args.AscendModels); err != nil {
		errs = append(errs, field.Invalid(path.Child("ascendModels"), "", err.Error()))
	}
	return errs.ToAggregate()
}
