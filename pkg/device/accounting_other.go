//go:build !linux

package device

import (
	"errors"
	"fmt"
)

// readAccountingFile needs Linux's O_PATH to open a file a tenant controls
// without side effects; the node agent runs on Linux only.
func readAccountingFile(path string) ([]byte, error) {
	return nil, fmt.Errorf("%s: %w: reading accounting files needs Linux", path, errors.ErrUnsupported)
}
