package device

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// SignatureAnnotation holds the scheduler's signature of a pod's
// allocation. The Binding writes both, but a user who can create pods can
// also create one already bound (spec.nodeName) with a forged allocation;
// the node agent hands out only cards the scheduler signed, for this pod.
const SignatureAnnotation = "mosaic.io/allocation-signature"

// MinKeyBytes is the shortest signing key accepted.
const MinKeyBytes = 32

// The signing keys' place: a Secret mounted as a directory into the
// scheduler and every node agent. The scheduler signs with the key in the
// file CurrentKey; the agent accepts a signature by any key file of the
// directory, so that pods signed before a rotation (with the key now in
// PreviousKey) keep their cards when their containers restart.
const (
	DefaultKeyDir = "/etc/mosaic/allocation-key"
	CurrentKey    = "current"
	PreviousKey   = "previous"
)

// LoadKey reads a signing key file (as mounted from a Secret). Surrounding
// white space is not part of the key, so a key written with a trailing
// newline signs as the same key.
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

// Verify checks a pod's allocation signature against one key.
func Verify(key []byte, podUID, allocation, signature string) error {
	return NewKeySet(key).Verify(podUID, allocation, signature)
}

// ErrUnsigned is Verify's error for an allocation without a signature.
var ErrUnsigned = errors.New("the allocation is not signed by the scheduler (no " + SignatureAnnotation + ")")

// KeySet is the keys a node agent accepts allocation signatures from. One
// loaded from a directory reads it again at every check, so that a key
// added to or retired from the mounted Secret counts at once, without a
// restart: the agent checks at container creation, and a few small files
// cost little beside that.
type KeySet struct {
	dir  string
	keys [][]byte
}

// NewKeySet holds fixed keys.
func NewKeySet(keys ...[]byte) *KeySet { return &KeySet{keys: keys} }

// LoadKeySet reads every key file of dir. Names starting with a dot are
// left out: a mounted Secret keeps its versions in hidden entries (..data).
// An unreadable directory, one without keys, and a key file that is empty
// or shorter than MinKeyBytes are errors naming the path, so that a
// misconfigured agent does not start rather than accept no signature.
func LoadKeySet(dir string) (*KeySet, error) {
	keys, err := readKeyDir(dir)
	if err != nil {
		return nil, err
	}
	return &KeySet{dir: dir, keys: keys}, nil
}

func readKeyDir(dir string) ([][]byte, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("allocation signing keys: %w", err)
	}
	var keys [][]byte
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			continue
		}
		// Secret files are symlinks into ..data: follow them, and leave
		// out what is not a file in the end.
		path := filepath.Join(dir, e.Name())
		if st, err := os.Stat(path); err != nil || st.IsDir() {
			continue
		}
		k, err := LoadKey(path)
		if err != nil {
			return nil, err
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("allocation signing keys: no key file in %s", dir)
	}
	return keys, nil
}

// Verify checks a pod's allocation signature against every key of the
// set. Keys that can no longer be read verify nothing.
func (s *KeySet) Verify(podUID, allocation, signature string) error {
	if signature == "" {
		return ErrUnsigned
	}
	keys := s.keys
	if s.dir != "" {
		var err error
		if keys, err = readKeyDir(s.dir); err != nil {
			return fmt.Errorf("the allocation's signature cannot be checked: %w", err)
		}
	}
	for _, k := range keys {
		if hmac.Equal([]byte(Sign(k, podUID, allocation)), []byte(signature)) {
			return nil
		}
	}
	if s.dir == "" {
		return errors.New("the allocation's signature does not match: it was not written by the scheduler for this pod")
	}
	return fmt.Errorf("the allocation's signature matches none of the %d keys in %s: it was not written by the scheduler for this pod, or with a key retired since", len(keys), s.dir)
}
