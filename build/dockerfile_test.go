// Package build checks build/Dockerfile where no container engine runs:
// the stages it names exist, what each stage copies is what another
// builds, and each build stage's commands run on the host as they would in
// the image (the repository for /src, a temporary directory for /out).
package build

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

type instruction struct {
	op, args string
}

type stage struct {
	name, from string
	steps      []instruction
}

// parse reads a Dockerfile: continuation lines joined, comments dropped.
func parse(t *testing.T, path string) (stages []*stage, comments []string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var cur *stage
	var line string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		text := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(text, "#") {
			comments = append(comments, text)
			continue
		}
		if strings.HasSuffix(text, "\\") {
			line += strings.TrimSuffix(text, "\\") + " "
			continue
		}
		line += text
		if strings.TrimSpace(line) == "" {
			line = ""
			continue
		}
		op, args, _ := strings.Cut(strings.TrimSpace(line), " ")
		line = ""
		op = strings.ToUpper(op)
		if op == "FROM" {
			f := strings.Fields(args)
			cur = &stage{from: f[0]}
			if len(f) == 3 && strings.EqualFold(f[1], "AS") {
				cur.name = f[2]
			}
			stages = append(stages, cur)
			continue
		}
		if cur == nil {
			t.Fatalf("%s: %s before FROM", path, op)
		}
		cur.steps = append(cur.steps, instruction{op, strings.TrimSpace(args)})
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return stages, comments
}

func byName(stages []*stage) map[string]*stage {
	m := map[string]*stage{}
	for _, s := range stages {
		m[s.name] = s
	}
	return m
}

// The targets the header names, the chart's images and the stages agree;
// every COPY --from takes what its stage builds; every ENTRYPOINT runs
// what its stage copied.
func TestDockerfileStagesFitTogether(t *testing.T) {
	stages, comments := parse(t, "Dockerfile")
	named := byName(stages)
	targets := regexp.MustCompile(`--target\s+(\S+)`)
	var want []string
	for _, c := range comments {
		for _, m := range targets.FindAllStringSubmatch(c, -1) {
			want = append(want, m[1])
		}
	}
	if len(want) < 4 {
		t.Fatalf("the header names targets %v", want)
	}
	for _, target := range want {
		if named[target] == nil {
			t.Errorf("the header builds --target %s, which is no stage", target)
		}
	}
	// The chart's images are mosaic-<target>.
	images := regexp.MustCompile(`image: \S+/mosaic-([a-z-]+):`)
	for _, f := range []string{"../manifests/scheduler.yaml", "../manifests/device-plugin.yaml", "../manifests/webhook.yaml"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range images.FindAllStringSubmatch(string(b), -1) {
			if named[m[1]] == nil {
				t.Errorf("%s runs image mosaic-%s, which no stage builds", f, m[1])
			}
		}
	}
	outputs := regexp.MustCompile(`-o\s+(\S+)`)
	for _, s := range stages {
		copied := map[string]bool{}
		for _, st := range s.steps {
			switch st.op {
			case "COPY":
				f := strings.Fields(st.args)
				from, ok := strings.CutPrefix(f[0], "--from=")
				if !ok {
					continue
				}
				src, dst := f[1], f[2]
				copied[filepath.Join(dst, filepath.Base(src))] = true
				base := named[from]
				if base == nil {
					t.Errorf("stage %s copies from %s, which is no stage", s.name, from)
					continue
				}
				if !builds(base, src, outputs) {
					t.Errorf("stage %s copies %s from %s, which does not build it", s.name, src, from)
				}
			case "ENTRYPOINT":
				bin := strings.Trim(strings.Split(strings.Trim(st.args, "[]"), ",")[0], `" `)
				if !copied[bin] {
					t.Errorf("stage %s runs %s, which it did not copy", s.name, bin)
				}
			}
		}
	}
	// The node agent's init container copies the enforcer from where the
	// image holds it.
	b, err := os.ReadFile("../manifests/device-plugin.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "command: [cp, /usr/local/lib/mosaic/libmosaic-enforcer.so,") {
		t.Error("the DaemonSet's install-enforcer does not copy /usr/local/lib/mosaic/libmosaic-enforcer.so, where the image holds it")
	}
}

// builds reports whether stage s produces path: a -o output of one of its
// RUN commands, or, for the enforcer, the native Makefile's library under
// /src (the repository).
func builds(s *stage, path string, outputs *regexp.Regexp) bool {
	for _, st := range s.steps {
		if st.op != "RUN" {
			continue
		}
		for _, m := range outputs.FindAllStringSubmatch(st.args, -1) {
			if m[1] == path {
				return true
			}
		}
		if path == "/src/native/build/libmosaic-enforcer.so" && strings.Contains(st.args, "make -C native") {
			return true
		}
	}
	return false
}

// Each build stage's RUN commands, with its ENV, run on the host: the
// repository stands for /src (the stages' WORKDIR after COPY . .) and a
// temporary directory for /out. The base images cannot be pulled here;
// the go and make they provide are the host's. It links every component.
func TestDockerfileStagesBuildHere(t *testing.T) {
	if testing.Short() {
		t.Skip("links every component")
	}
	stages, _ := parse(t, "Dockerfile")
	out := t.TempDir()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	ran := 0
	for _, s := range stages {
		if s.name == "gomod" {
			continue // go mod download: the module cache is the host's
		}
		env := os.Environ()
		for _, st := range s.steps {
			switch st.op {
			case "ENV":
				env = append(env, strings.Fields(st.args)...)
			case "RUN":
				// -trimpath only changes the file paths recorded in the
				// binaries, and would have every package of the tree
				// compiled a second time, beside the test build's.
				cmd := strings.ReplaceAll(st.args, "/out/", out+"/")
				cmd = strings.ReplaceAll(cmd, " -trimpath", "")
				c := exec.Command("bash", "-c", cmd)
				c.Dir, c.Env = root, env
				if b, err := c.CombinedOutput(); err != nil {
					t.Errorf("stage %s: %s: %v\n%s", s.name, cmd, err, b)
				}
				ran++
			}
		}
	}
	if ran < 5 {
		t.Errorf("ran %d build commands", ran)
	}
	for _, bin := range []string{"mosaic-scheduler", "mosaic-webhook", "mosaic-dashboard", "mosaic-device-plugin"} {
		if st, err := os.Stat(filepath.Join(out, bin)); err != nil || st.Mode()&0o111 == 0 {
			t.Errorf("%s: not built (%v)", bin, err)
		}
	}
	if _, err := os.Stat(filepath.Join(root, "native/build/libmosaic-enforcer.so")); err != nil {
		t.Errorf("the enforcer: %v", err)
	}
}
