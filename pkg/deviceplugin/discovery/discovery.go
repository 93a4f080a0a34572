// Package discovery finds a node's cards. Each vendor is a Backend; the
// node agent serves whatever its backend reports and never talks to a
// driver itself.
package discovery

import (
	"context"

	"github.com/mosaic-gpu/mosaic/pkg/device"
)

// Backend reports the cards of this node.
type Backend interface {
	// Name is the backend's flag value: nvidia, ascend or fake.
	Name() string
	// Devices lists the cards, with their current health.
	Devices(ctx context.Context) ([]device.Device, error)
}
