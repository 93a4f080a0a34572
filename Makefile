# Mosaic: GPU sharing for Kubernetes.
GO        ?= go
BIN       := bin
export CGO_CFLAGS ?= -Wno-deprecated-declarations
# Integration tests start a real API server per package; two cores cannot
# run many of those at once.
TEST_P    ?= 2
TEST_TIMEOUT ?= 40m

.PHONY: all build demo demo-ui test test-go test-native lint fuzz bench bench-large bench-perf bench-integration bench-doc chain-artifacts clean manifests

all: build

build: $(BIN)/mosaic-scheduler $(BIN)/mosaic-device-plugin $(BIN)/mosaic-webhook $(BIN)/mosaic-dashboard $(BIN)/mosaic-inventory $(BIN)/mosaic-sim $(BIN)/kubectl-mosaic native

$(BIN)/mosaic-scheduler: FORCE
	$(GO) build -o $@ ./cmd/scheduler

$(BIN)/mosaic-device-plugin: FORCE
	$(GO) build -o $@ ./cmd/device-plugin

$(BIN)/mosaic-webhook: FORCE
	$(GO) build -o $@ ./cmd/webhook

$(BIN)/mosaic-dashboard: FORCE
	$(GO) build -o $@ ./cmd/dashboard

$(BIN)/mosaic-inventory: FORCE
	$(GO) build -o $@ ./cmd/mosaic-inventory

$(BIN)/mosaic-sim: FORCE
	$(GO) build -o $@ ./cmd/sim

$(BIN)/kubectl-mosaic: FORCE
	$(GO) build -o $@ ./cmd/kubectl-mosaic

.PHONY: native
native:
	$(MAKE) -C native

# The main job on an embedded default: the real scheduler on a real
# in-process API server, placing examples/demo.yaml.
demo: $(BIN)/mosaic-sim
	$(BIN)/mosaic-sim -f examples/demo.yaml

# The same run, then its cluster kept in the dashboard (docs/dashboard.md)
# until Ctrl-C; the address it prints is the one it listens on.
DEMO_UI_ADDR ?= 127.0.0.1:8080
demo-ui: $(BIN)/mosaic-sim
	$(BIN)/mosaic-sim -f examples/demo.yaml --serve $(DEMO_UI_ADDR)

test: lint test-native test-go

# The plain YAML of manifests/, rendered from the Helm chart
# (manifests/charts/mosaic); a test fails while they differ.
manifests:
	$(GO) run ./manifests/charts/render -o manifests

# The scheduler's micro-benchmarks run once each, and test/perf's harness
# once at its smallest sizes (about 20 s; it checks every pod bound and
# every card within capacity), so that they keep working
# (docs/performance.md has their figures).
test-go:
	$(GO) test -p $(TEST_P) -timeout $(TEST_TIMEOUT) ./...
	$(GO) test -run '^$$' -bench . -benchtime 1x ./pkg/placement ./pkg/plugins/mosaic
	$(MAKE) bench-perf PERF_CASES='MosaicGPUMix|MosaicSchedulingBasic' PERF_SIZES='100Nodes_500Pods|5Nodes' PERF_ROUNDS=1 PERF_OUT=$(BIN)/perf-smoke

test-native:
	$(MAKE) -C native test

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

# Short fuzzing of every decoder (go test -fuzz takes one target at a time).
FUZZ_TIME ?= 20s
fuzz:
	$(GO) test ./pkg/device -run '^$$' -fuzz '^FuzzDecodeInventory$$' -fuzztime $(FUZZ_TIME)
	$(GO) test ./pkg/device -run '^$$' -fuzz '^FuzzDecodeAllocation$$' -fuzztime $(FUZZ_TIME)
	$(GO) test ./pkg/device -run '^$$' -fuzz '^FuzzDecodeLimits$$' -fuzztime $(FUZZ_TIME)
	$(GO) test ./pkg/device -run '^$$' -fuzz '^FuzzParsePodRequest$$' -fuzztime $(FUZZ_TIME)

# Upstream's scheduler benchmark harness (k8s.io/kubernetes/test/integration/
# scheduler_perf) needs an etcd binary on PATH: this one is built from the
# etcd module the tests already use.
$(BIN)/etcd: FORCE
	$(GO) build -o $@ ./hack/etcd

# make bench: the micro-benchmarks; Mosaic's workloads at 1,000 nodes x
# 5,000 pods and upstream's own (SchedulingBasic, pod affinity and
# anti-affinity, topology spreading) at 500 nodes, stock and Mosaic in turn,
# in upstream's harness (test/perf); the native library's.
# make bench-large: the same workloads at 5,000 nodes x 10,000 pods and
# upstream's 5000Nodes (and SchedulingBasic's 5000Nodes_10000Pods, which has
# upstream's threshold). docs/performance.md has the figures.
PERF_MOSAIC   := PlainPods|GPUCount|MosaicPlainPods|MosaicGPUMix|MosaicGPUSmall|MosaicGPUSmallSpread|MosaicGPUWhole|MosaicGPUNUMAPair|MosaicGPUMixSpread
PERF_UPSTREAM := SchedulingBasic|SchedulingPodAffinity|SchedulingPodAntiAffinity|SchedulingPreferredPodAffinity|SchedulingPreferredPodAntiAffinity|TopologySpreading|PreferredTopologySpreading
PERF_UPSTREAM_BOTH := $(PERF_UPSTREAM)|$(subst |,|Mosaic,Mosaic$(PERF_UPSTREAM))

bench:
	$(GO) test ./pkg/placement ./pkg/plugins/... -run '^$$' -bench . -benchmem
	$(MAKE) bench-perf PERF_CASES='$(PERF_MOSAIC)' PERF_SIZES=1000Nodes_5000Pods
	$(MAKE) bench-perf PERF_CASES='$(PERF_UPSTREAM_BOTH)' PERF_SIZES=500Nodes
	$(MAKE) -C native bench

bench-large:
	$(MAKE) bench-perf PERF_CASES='$(PERF_MOSAIC)' PERF_SIZES=5000Nodes_10000Pods
	$(MAKE) bench-perf PERF_CASES='$(PERF_UPSTREAM_BOTH)' PERF_SIZES='5000Nodes|5000Nodes_10000Pods'

# make bench-doc: docs/benchmarks.md, written from one run of the benchmarks
# (hack/benchmarks-doc.sh: make bench's sizes, 3 rounds, one profile, the
# requeue benchmark; about 45 minutes on 2 cores; BENCH_DOC_* choose).
bench-doc: $(BIN)/etcd
	hack/benchmarks-doc.sh

# print-VAR prints a variable (for scripts).
print-%:
	@echo '$($*)'

# One run of test/perf: the test cases PERF_CASES (performance-config.yaml's
# and upstream's by name, | between them) at the workload sizes PERF_SIZES,
# PERF_ROUNDS rounds, with PERF_FLAGS added (e.g. -perf-cpuprofile). The
# table of medians and ratios to stock ends the output; the whole log,
# upstream's JSON results and profiles go to PERF_OUT.
PERF_CASES   ?= PlainPods|MosaicPlainPods
PERF_SIZES   ?= 100Nodes_500Pods
PERF_ROUNDS  ?= 3
PERF_OUT     ?= $(BIN)/perf
PERF_TIMEOUT ?= 180m
PERF_FLAGS   ?=
bench-perf: $(BIN)/etcd
	@mkdir -p $(PERF_OUT)/logs
	@echo "test/perf: ($(PERF_CASES)) x ($(PERF_SIZES)), $(PERF_ROUNDS) rounds; log in $(PERF_OUT)/bench.log"
	@PATH="$(abspath $(BIN)):$$PATH" ARTIFACTS="$(abspath $(PERF_OUT))/logs" \
	$(GO) test ./test/perf -run '^$$' -benchtime 1x -timeout $(PERF_TIMEOUT) \
	  -bench 'BenchmarkPerfScheduling/^($(PERF_CASES))(#|$$)/^($(PERF_SIZES))$$' \
	  -rounds $(PERF_ROUNDS) -perf-scheduling-label-filter= -data-items-dir "$(abspath $(PERF_OUT))" $(PERF_FLAGS) \
	  > $(PERF_OUT)/bench.log 2>&1; rc=$$?; \
	grep -E '^(\||--- FAIL|FAIL|ok|panic)' $(PERF_OUT)/bench.log; \
	[ $$rc = 0 ] || tail -n 40 $(PERF_OUT)/bench.log; exit $$rc

# Mosaic's own harness (test/integration/bench_test.go): pods created
# before the scheduler starts, so the API server's create rate is not in
# the figure.
bench-integration:
	MOSAIC_BENCH_ROUNDS=3 $(GO) test ./test/integration -run '^$$' -bench SchedulingThroughput -benchtime 1x -timeout 60m
	MOSAIC_BENCH_SIZE=1000x5000 MOSAIC_BENCH_FREES=20 $(GO) test ./test/integration -run '^$$' -bench RequeueAtScale -benchtime 1x -timeout 60m

# The control-plane half of test/gpu/chain.sh: scheduler + NRI decision for
# a pod on a real card's inventory, written to test/gpu/chain-out/.
chain-artifacts:
	mkdir -p test/gpu/chain-out
	MOSAIC_CHAIN_OUT=$(CURDIR)/test/gpu/chain-out $(GO) test ./test/integration -run '^TestChainArtifacts$$' -count=1

clean:
	rm -rf $(BIN)
	$(MAKE) -C native clean

FORCE:
