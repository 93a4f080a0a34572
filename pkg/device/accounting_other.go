//go:build !linux

package device

import (
	"errors"
	"fmt"
)

// readTenantFile needs Linux's O_PATH to open a file a tenant controls
// without side effects; the node agent runs on Linux only.
func readTenantFile(path string, size int) ([]byte, error) {
	return nil, fmt.Errorf("%s: %w: reading accounting files needs Linux", path, errors.ErrUnsupported)
}
