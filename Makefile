# Mosaic: GPU sharing for Kubernetes.
GO        ?= go
BIN       := bin
export CGO_CFLAGS ?= -Wno-deprecated-declarations
# Integration tests start a real API server per package; two cores cannot
# run many of those at once.
TEST_P    ?= 2
TEST_TIMEOUT ?= 40m

.PHONY: all build demo demo-ui test test-go test-native lint fuzz bench chain-artifacts clean manifests

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

# The scheduler's micro-benchmarks run once each so that they keep working
# (docs/performance.md has their figures).
test-go:
	$(GO) test -p $(TEST_P) -timeout $(TEST_TIMEOUT) ./...
	$(GO) test -run '^$$' -bench . -benchtime 1x ./pkg/placement ./pkg/plugins/mosaic

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

bench:
	$(GO) test ./pkg/placement ./pkg/plugins/... -run '^$$' -bench . -benchmem
	MOSAIC_BENCH_ROUNDS=3 $(GO) test ./test/integration -run '^$$' -bench SchedulingThroughput -benchtime 1x -timeout 60m
	$(MAKE) -C native bench

# The control-plane half of test/gpu/chain.sh: scheduler + NRI decision for
# a pod on a real card's inventory, written to test/gpu/chain-out/.
chain-artifacts:
	mkdir -p test/gpu/chain-out
	MOSAIC_CHAIN_OUT=$(CURDIR)/test/gpu/chain-out $(GO) test ./test/integration -run '^TestChainArtifacts$$' -count=1

clean:
	rm -rf $(BIN)
	$(MAKE) -C native clean

FORCE:
