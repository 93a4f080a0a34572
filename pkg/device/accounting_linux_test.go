package device

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// accountingBytes is a valid accounting file with one live process holding
// 1000 bytes of card 0.
func accountingBytes() []byte {
	b := make([]byte, AccountingSize)
	le := binary.LittleEndian
	le.PutUint64(b[shmOffMagic:], shmMagic)
	le.PutUint32(b[shmOffVer:], shmVersion)
	le.PutUint32(b[shmOffNSlots:], shmSlots)
	le.PutUint64(b[shmOffLive:], 1<<3)
	slot := b[shmOffSlots+3*shmSlotSize:]
	le.PutUint32(slot[slotOffPID:], 100)
	le.PutUint64(slot[slotOffUsed:], 1000)
	return b
}

// readWithin runs ReadAccounting, failing the test if it does not return:
// a hang guard only, far longer than any read takes.
func readWithin(t *testing.T, path string) ([]uint64, error) {
	t.Helper()
	type result struct {
		used []uint64
		err  error
	}
	done := make(chan result, 1)
	go func() {
		a, err := ReadAccounting(path)
		if err != nil {
			done <- result{nil, err}
			return
		}
		done <- result{a.Used, nil}
	}()
	select {
	case r := <-done:
		return r.used, r.err
	case <-time.After(20 * time.Second):
		t.Fatalf("ReadAccounting(%s) did not return", path)
		return nil, nil
	}
}

// The container can write the directory the agent reads its accounting
// file from: whatever it puts there is read as usage or refused, at once.
func TestReadAccountingFromATenantsDirectory(t *testing.T) {
	dir := t.TempDir()
	elsewhere := filepath.Join(t.TempDir(), "valid.shm")
	if err := os.WriteFile(elsewhere, accountingBytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		make func(path string) error
		want string // error substring; "" means the usage is read
	}{
		{"regular file", func(p string) error { return os.WriteFile(p, accountingBytes(), 0o644) }, ""},
		{"huge sparse file", func(p string) error {
			if err := os.WriteFile(p, accountingBytes(), 0o644); err != nil {
				return err
			}
			return os.Truncate(p, 10<<30)
		}, ""},
		{"symlink to /dev/zero", func(p string) error { return os.Symlink("/dev/zero", p) }, "is a symlink, want a regular file"},
		{"symlink to a valid file elsewhere", func(p string) error { return os.Symlink(elsewhere, p) }, "is a symlink, want a regular file"},
		{"FIFO", func(p string) error { return syscall.Mkfifo(p, 0o666) }, "is a FIFO, want a regular file"},
		{"directory", func(p string) error { return os.Mkdir(p, 0o755) }, "is a directory, want a regular file"},
		{"truncated file", func(p string) error { return os.WriteFile(p, accountingBytes()[:AccountingSize-1], 0o644) }, fmt.Sprintf("%d bytes, want %d", AccountingSize-1, AccountingSize)},
		{"empty file", func(p string) error { return os.WriteFile(p, nil, 0o644) }, fmt.Sprintf("0 bytes, want %d", AccountingSize)},
		{"garbage", func(p string) error { return os.WriteFile(p, make([]byte, AccountingSize), 0o644) }, "not a version 1 enforcer accounting file"},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, string(rune('a'+i)), AccountingFile)
			if err := os.Mkdir(filepath.Dir(path), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := tc.make(path); err != nil {
				t.Fatal(err)
			}
			used, err := readWithin(t, path)
			if tc.want == "" {
				if err != nil || used[0] != 1000 {
					t.Fatalf("usage = %v, %v; want card 0: 1000", used, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), path) {
				t.Fatalf("error = %v, want it to name %s and say %q", err, path, tc.want)
			}
		})
	}
}

// A device node is refused without being opened for reading (O_PATH does
// not call its driver).
func TestReadAccountingRefusesADevice(t *testing.T) {
	if _, err := readWithin(t, "/dev/null"); err == nil || !strings.Contains(err.Error(), "is a character device") {
		t.Fatalf("error = %v, want /dev/null refused as a character device", err)
	}
}

// No file yet: the container has not allocated.
func TestReadAccountingMissing(t *testing.T) {
	_, err := readWithin(t, filepath.Join(t.TempDir(), AccountingFile))
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("error = %v, want fs.ErrNotExist", err)
	}
}
