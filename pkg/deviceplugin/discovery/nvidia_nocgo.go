//go:build !cgo

package discovery

import (
	"context"
	"fmt"

	"github.com/mosaic-gpu/mosaic/pkg/device"
)

// NVIDIA is the NVML backend; NVML is reached through cgo, so a binary
// built without it has no NVIDIA support.
type NVIDIA struct{}

var errNVIDIANoCgo = fmt.Errorf("%w: NVIDIA support needs a binary built with cgo", ErrNoDriver)

// NewNVIDIA always fails in a binary built without cgo.
func NewNVIDIA(NVIDIAOptions) (*NVIDIA, error) { return nil, errNVIDIANoCgo }

func (n *NVIDIA) Name() string { return "nvidia" }

func (n *NVIDIA) Close() error { return nil }

func (n *NVIDIA) Devices(context.Context) ([]device.Device, error) { return nil, errNVIDIANoCgo }

func (n *NVIDIA) WatchHealth(context.Context, func(string, bool)) error { return errNVIDIANoCgo }
