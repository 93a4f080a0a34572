// Package discovery finds a node's cards. Each vendor is a Backend; the
// node agent serves whatever its backend reports and never talks to a
// driver itself.
package discovery

import (
	"context"
	"errors"

	"github.com/mosaic-gpu/mosaic/pkg/device"
)

// Backend reports the cards of this node.
type Backend interface {
	// Name is the backend's flag value: nvidia, ascend or fake.
	Name() string
	// Devices lists the cards, with their current health.
	Devices(ctx context.Context) ([]device.Device, error)
}

// ErrNoDriver means the node has no usable driver for a backend: its
// library is missing or the kernel driver is not loaded. The node agent
// logs it and runs with no cards rather than crash-looping, so a GPU node
// whose driver is still being installed joins the cluster as soon as the
// driver is there and the agent restarts.
var ErrNoDriver = errors.New("device driver not found")
