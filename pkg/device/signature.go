package device

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"strings"
)

// SignatureAnnotation holds the scheduler's signature of a pod's
// allocation. The Binding writes both, but a user who can create pods can
// also create one already bound (spec.nodeName) with a forged allocation;
// with a shared key the node agent hands out only cards the scheduler
// signed, for this pod.
const SignatureAnnotation = "mosaic.io/allocation-signature"

// MinKeyBytes is the shortest signing key accepted.
const MinKeyBytes = 32

// LoadKey reads a signing key file (as mounted from a Secret).
func LoadKey(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("allocation signing key: %w", err)
	}
	key := []byte(strings.TrimSpace(string(b)))
	if len(key) < MinKeyBytes {
		return nil, fmt.Errorf("allocation signing key %s: %d bytes, want at least %d", path, len(key), MinKeyBytes)
	}
	return key, nil
}

// Sign binds an encoded allocation to the pod's UID.
func Sign(key []byte, podUID, allocation string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("mosaic-allocation-v1\x00" + podUID + "\x00" + allocation))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// Verify checks a pod's allocation signature.
func Verify(key []byte, podUID, allocation, signature string) error {
	if signature == "" {
		return errors.New("the allocation is not signed by the scheduler (no " + SignatureAnnotation + ")")
	}
	want := Sign(key, podUID, allocation)
	if !hmac.Equal([]byte(want), []byte(signature)) {
		return errors.New("the allocation's signature does not match: it was not written by the scheduler for this pod")
	}
	return nil
}
