//go:build !cgo

package discovery

import (
	"context"
	"fmt"

	"github.com/mosaic-gpu/mosaic/pkg/device"
)

// Ascend is the DCMI backend; DCMI is reached through cgo, so a binary
// built without it has no Ascend support.
type Ascend struct{}

var errAscendNoCgo = fmt.Errorf("%w: Ascend support needs a binary built with cgo", ErrNoDriver)

// NewAscend always fails in a binary built without cgo.
func NewAscend(AscendOptions) (*Ascend, error) { return nil, errAscendNoCgo }

func (a *Ascend) Name() string { return "ascend" }

func (a *Ascend) Close() error { return nil }

func (a *Ascend) Devices(context.Context) ([]device.Device, error) { return nil, errAscendNoCgo }
