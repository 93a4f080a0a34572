package device

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSignVerify(t *testing.T) {
	key := []byte(strings.Repeat("k", 32))
	sig := Sign(key, "uid-1", `{"v":1}`)
	if err := Verify(key, "uid-1", `{"v":1}`, sig); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct{ uid, alloc, sig string }{
		"other pod":        {"uid-2", `{"v":1}`, sig},
		"edited":           {"uid-1", `{"v":2}`, sig},
		"missing":          {"uid-1", `{"v":1}`, ""},
		"other key's sign": {"uid-1", `{"v":1}`, Sign([]byte(strings.Repeat("x", 32)), "uid-1", `{"v":1}`)},
	} {
		if err := Verify(key, tc.uid, tc.alloc, tc.sig); err == nil {
			t.Errorf("%s: verified", name)
		}
	}
}

func TestLoadKey(t *testing.T) {
	dir := t.TempDir()
	short := filepath.Join(dir, "short")
	_ = os.WriteFile(short, []byte("abc\n"), 0o600)
	if _, err := LoadKey(short); err == nil || !strings.Contains(err.Error(), "want at least 32") {
		t.Errorf("short key: %v", err)
	}
	empty := filepath.Join(dir, "empty")
	_ = os.WriteFile(empty, []byte("\n"), 0o600)
	if _, err := LoadKey(empty); err == nil || !strings.Contains(err.Error(), empty+": 0 bytes, want at least 32") {
		t.Errorf("empty key: %v", err)
	}
	good := filepath.Join(dir, "good")
	_ = os.WriteFile(good, []byte(strings.Repeat("z", 40)+"\n"), 0o600)
	if k, err := LoadKey(good); err != nil || len(k) != 40 {
		t.Errorf("good key: %d bytes, %v", len(k), err)
	}
	if _, err := LoadKey(filepath.Join(dir, "missing")); err == nil {
		t.Error("missing key file loaded")
	}
}

// secretDir lays out keys as the kubelet mounts a Secret: the files live
// in a hidden timestamped directory reached through ..data, and each key
// is a symlink through ..data. A later call swaps ..data, as an update of
// the Secret does.
func secretDir(t *testing.T, dir string, version string, keys map[string]string) {
	t.Helper()
	ts := filepath.Join(dir, "..ts-"+version)
	if err := os.MkdirAll(ts, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, k := range keys {
		if err := os.WriteFile(filepath.Join(ts, name), []byte(k), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	tmp := filepath.Join(dir, "..data_tmp")
	if err := os.Symlink(filepath.Base(ts), tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), ".") {
			_ = os.Remove(filepath.Join(dir, e.Name()))
		}
	}
	for name := range keys {
		if err := os.Symlink(filepath.Join("..data", name), filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
}

// A key set accepts signatures by any of its keys (the current key and the
// one before a rotation) and refuses the rest.
func TestKeySetVerify(t *testing.T) {
	current, previous, unknown := strings.Repeat("c", 32), strings.Repeat("p", 32), strings.Repeat("u", 32)
	dir := t.TempDir()
	secretDir(t, dir, "1", map[string]string{CurrentKey: current + "\n", PreviousKey: previous})
	set, err := LoadKeySet(dir)
	if err != nil {
		t.Fatal(err)
	}
	const uid, alloc = "uid-1", `{"v":1}`
	for name, key := range map[string]string{"current": current, "previous": previous} {
		if err := set.Verify(uid, alloc, Sign([]byte(key), uid, alloc)); err != nil {
			t.Errorf("signed with the %s key: %v", name, err)
		}
	}
	for name, tc := range map[string]struct{ uid, alloc, sig, want string }{
		"unknown key": {uid, alloc, Sign([]byte(unknown), uid, alloc), "matches none of the 2 keys in " + dir},
		"other pod":   {"uid-2", alloc, Sign([]byte(current), uid, alloc), "matches none"},
		"edited":      {uid, `{"v":2}`, Sign([]byte(current), uid, alloc), "matches none"},
		"unsigned":    {uid, alloc, "", "not signed"},
	} {
		if err := set.Verify(tc.uid, tc.alloc, tc.sig); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want it to contain %q", name, err, tc.want)
		}
	}
	if err := set.Verify(uid, alloc, ""); !errors.Is(err, ErrUnsigned) {
		t.Errorf("unsigned: error %v, want ErrUnsigned", err)
	}
}

// A rotation replaces the Secret while the agent runs: a signature by the
// new key verifies without a restart, one by the key now retired does not.
func TestKeySetFollowsARotatedSecret(t *testing.T) {
	k1, k2, k3 := strings.Repeat("1", 32), strings.Repeat("2", 32), strings.Repeat("3", 32)
	dir := t.TempDir()
	secretDir(t, dir, "1", map[string]string{CurrentKey: k1})
	set, err := LoadKeySet(dir)
	if err != nil {
		t.Fatal(err)
	}
	const uid, alloc = "uid-1", `{"v":1}`
	sig := func(k string) string { return Sign([]byte(k), uid, alloc) }
	if err := set.Verify(uid, alloc, sig(k2)); err == nil {
		t.Fatal("a key not yet in the Secret verified")
	}
	secretDir(t, dir, "2", map[string]string{CurrentKey: k2, PreviousKey: k1})
	for _, k := range []string{k2, k1} {
		if err := set.Verify(uid, alloc, sig(k)); err != nil {
			t.Errorf("after the first rotation: %v", err)
		}
	}
	secretDir(t, dir, "3", map[string]string{CurrentKey: k3, PreviousKey: k2})
	if err := set.Verify(uid, alloc, sig(k3)); err != nil {
		t.Errorf("after the second rotation, the new key: %v", err)
	}
	if err := set.Verify(uid, alloc, sig(k1)); err == nil {
		t.Error("after the second rotation, the retired key still verifies")
	}
	// A Secret gone from the mount verifies nothing.
	for _, e := range []string{CurrentKey, PreviousKey} {
		_ = os.Remove(filepath.Join(dir, e))
	}
	if err := set.Verify(uid, alloc, sig(k3)); err == nil || !strings.Contains(err.Error(), "cannot be checked: allocation signing keys: no key file in "+dir) {
		t.Errorf("with the keys gone: %v", err)
	}
}

func TestLoadKeySetRefusesBadDirectories(t *testing.T) {
	root := t.TempDir()
	short := filepath.Join(root, "short")
	secretDir(t, short, "1", map[string]string{CurrentKey: strings.Repeat("c", 32), PreviousKey: "tiny"})
	empty := filepath.Join(root, "empty")
	secretDir(t, empty, "1", map[string]string{CurrentKey: ""})
	none := filepath.Join(root, "none")
	if err := os.Mkdir(none, 0o755); err != nil {
		t.Fatal(err)
	}
	for dir, want := range map[string]string{
		short:                         filepath.Join(short, PreviousKey) + ": 4 bytes, want at least 32",
		empty:                         filepath.Join(empty, CurrentKey) + ": 0 bytes, want at least 32",
		none:                          "no key file in " + none,
		filepath.Join(root, "absent"): "no such file or directory",
	} {
		if _, err := LoadKeySet(dir); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want it to contain %q", dir, err, want)
		}
	}
}
