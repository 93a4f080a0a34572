package device

import (
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
	good := filepath.Join(dir, "good")
	_ = os.WriteFile(good, []byte(strings.Repeat("z", 40)+"\n"), 0o600)
	if k, err := LoadKey(good); err != nil || len(k) != 40 {
		t.Errorf("good key: %d bytes, %v", len(k), err)
	}
	if _, err := LoadKey(filepath.Join(dir, "missing")); err == nil {
		t.Error("missing key file loaded")
	}
}
