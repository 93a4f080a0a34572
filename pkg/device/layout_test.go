package device

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// runLayoutProgram compiles a C program against the enforcer's headers
// (native/src) and runs it with a file path to write. It returns the
// numbers the program printed (offsets, sizes, constants) and the file.
func runLayoutProgram(t *testing.T, program, file string) ([]int, string) {
	t.Helper()
	if _, err := exec.LookPath("gcc"); err != nil {
		t.Fatal("gcc is needed to check layouts against the enforcer's headers in native/src")
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "layout.c")
	if err := os.WriteFile(src, []byte(program), 0o644); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "layout")
	if out, err := exec.Command("gcc", "-std=c11", "-I../../native/src", "-o", bin, src).CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v\n%s", err, out)
	}
	path := filepath.Join(dir, file)
	out, err := exec.Command(bin, path).Output()
	if err != nil {
		t.Fatal(err)
	}
	var got []int
	for _, f := range strings.Fields(string(out)) {
		n, err := strconv.Atoi(f)
		if err != nil {
			t.Fatalf("layout program printed %q", out)
		}
		got = append(got, n)
	}
	return got, path
}

// checkLayout compares what C says with what Go assumes, field by field.
func checkLayout(t *testing.T, got, want []int) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("layout program printed %d numbers, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("layout field %d: C says %d, Go assumes %d", i, got[i], want[i])
		}
	}
}
