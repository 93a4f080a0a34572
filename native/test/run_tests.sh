#!/usr/bin/env bash
# Runs the enforcer's tests over the stub driver (no GPU): make -C native test.
set -u
cd "$(dirname "$0")/.."
B=$PWD/build
GOLDEN=$PWD/../pkg/device/testdata
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
MiB=$((1 << 20))
fails=0
pass() { echo "ok   $1"; }
fail() { echo "FAIL $1"; fails=$((fails + 1)); }

# Every test runs with the enforcer preloaded over the stub, and an empty
# environment apart from what it sets.
run() {
	env -i PATH="$PATH" LD_LIBRARY_PATH="$B/stub" LD_PRELOAD="$B/libmosaic-enforcer.so" \
		MOSAIC_SHARED_DIR="$T/shared.$SCOPE" MOSAIC_ENFORCER_LOG=quiet "$@"
}
# In the background, with $! the test program itself (env execs it).
spawn() { # output file, env and command...
	local out=$1
	shift
	env -i PATH="$PATH" LD_LIBRARY_PATH="$B/stub" LD_PRELOAD="$B/libmosaic-enforcer.so" \
		MOSAIC_SHARED_DIR="$T/shared.$SCOPE" MOSAIC_ENFORCER_LOG=quiet "$@" >"$out" 2>&1 &
}
new_scope() { SCOPE=$1; mkdir -p "$T/shared.$SCOPE"; }
check() { # name, command...
	local name=$1
	shift
	if "$@" >"$T/out" 2>&1; then pass "$name"; else fail "$name"; sed 's/^/     /' "$T/out"; fi
}
within() { # value lo hi
	awk -v v="$1" -v lo="$2" -v hi="$3" 'BEGIN { exit !(v >= lo && v <= hi) }'
}

check "config: golden files, size and env tables" "$B/test_config" "$GOLDEN"

new_scope paths
check "every allocation path: over the limit is 2, below succeeds" \
	run CUDA_DEVICE_MEMORY_LIMIT=256m TEST_LIMIT=$((256 * MiB)) "$B/test_enforcer" paths
new_scope direct
check "linked directly against libcuda" run CUDA_DEVICE_MEMORY_LIMIT=256m TEST_LIMIT=$((256 * MiB)) "$B/test_direct"
new_scope procaddr
check "cuGetProcAddress returns the versioned and _ptsz hooks" \
	run CUDA_DEVICE_MEMORY_LIMIT=256m TEST_LIMIT=$((256 * MiB)) "$B/test_enforcer" procaddr
new_scope meminfo
check "cuMemGetInfo, cuDeviceTotalMem, NVML: min(limit, physical)" \
	run STUB_PHYS_BYTES=$((1024 * MiB)) CUDA_DEVICE_MEMORY_LIMIT=256m CUDA_DEVICE_MEMORY_LIMIT_1=2g \
	TEST_TOTAL0=$((256 * MiB)) TEST_TOTAL1=$((1024 * MiB)) "$B/test_enforcer" meminfo
new_scope uuid
check "limits file: cards matched by UUID before ordinal" \
	run MOSAIC_LIMITS_FILE="$GOLDEN/limits-valid.conf" STUB_UUID_SWAP=1 \
	TEST_TOTAL0=$((8192 * MiB)) TEST_TOTAL1=$((4096 * MiB)) "$B/test_enforcer" meminfo
new_scope raise
check "limits file: the environment cannot raise a limit" \
	run MOSAIC_LIMITS_FILE="$GOLDEN/limits-valid.conf" CUDA_DEVICE_MEMORY_LIMIT=16g \
	TEST_TOTAL0=$((4096 * MiB)) TEST_TOTAL1=$((8192 * MiB)) "$B/test_enforcer" meminfo
new_scope lower
check "limits file: the environment may lower a limit" \
	run MOSAIC_LIMITS_FILE="$GOLDEN/limits-valid.conf" CUDA_DEVICE_MEMORY_LIMIT_0=1g \
	TEST_TOTAL0=$((1024 * MiB)) TEST_TOTAL1=$((8192 * MiB)) "$B/test_enforcer" meminfo
for bad in "$GOLDEN"/limits-invalid-*.conf; do
	new_scope closed
	check "rejected file fails closed: $(basename "$bad")" run MOSAIC_LIMITS_FILE="$bad" "$B/test_enforcer" failclosed
done
for junk in 12x -1 1.5g 99999999999999999999g; do
	check "junk CUDA_DEVICE_MEMORY_LIMIT=$junk fails closed" run CUDA_DEVICE_MEMORY_LIMIT=$junk "$B/test_enforcer" failclosed
done
new_scope loud
run MOSAIC_ENFORCER_LOG= CUDA_DEVICE_MEMORY_LIMIT=12x "$B/test_enforcer" failclosed >/dev/null 2>"$T/err"
if [ "$(grep -c 'error: environment rejected' "$T/err")" = 1 ]; then pass "a rejected config says so once"; else fail "a rejected config says so once"; cat "$T/err"; fi

# 32 processes x 8 threads race 2 MiB allocations against a 64 MiB limit.
# Each round every thread tries one block and holds it at a barrier until all
# 256 have tried, so 256 blocks are wanted at once where 32 fit: at least 224
# refusals a round follow from the construction, not from how the OS
# schedules. While all hold, the stub's own count of bytes allocated must not
# pass the limit; afterwards nothing is left and the whole limit fits again.
new_scope race
rm -f "$T/stub.counters" "$T/barrier"
procs=32 threads=8 rounds=20
for i in $(seq $procs); do
	spawn "$T/race.$i" STUB_SHARED_FILE="$T/stub.counters" TEST_BARRIER_FILE="$T/barrier" \
		TEST_PARTIES=$((procs * threads)) TEST_LIMIT=$((64 * MiB)) CUDA_DEVICE_MEMORY_LIMIT=64m \
		"$B/test_enforcer" contend $threads $rounds
done
wait
read -r peak used < <(run STUB_SHARED_FILE="$T/stub.counters" "$B/test_enforcer" peak)
oks=$(cat "$T"/race.* | awk '/^ok/ { s += $2 } END { print s + 0 }')
ooms=$(cat "$T"/race.* | awk '/^ok/ { s += $4 } END { print s + 0 }')
min_ooms=$((rounds * (procs * threads - 32)))
if grep -q FAIL "$T"/race.*; then fail "race: a process failed"; grep -h FAIL "$T"/race.* | head; fi
if [ "$peak" -le $((64 * MiB)) ] && [ "$used" = 0 ] && [ "$ooms" -ge "$min_ooms" ]; then
	pass "$procs processes x $threads threads: peak $((peak / MiB)) MiB of 64, $oks allocations, $ooms refused (>= $min_ooms)"
else
	fail "$procs processes x $threads threads: peak $peak used $used ok $oks oom $ooms (want >= $min_ooms)"
fi
check "race: afterwards the whole 64 MiB fits again" \
	run STUB_SHARED_FILE="$T/stub.counters" CUDA_DEVICE_MEMORY_LIMIT=64m TEST_LIMIT=$((64 * MiB)) "$B/test_enforcer" fill

# kill -9 storm: holders die while others allocate; nothing hangs and the
# dead processes' memory is reclaimed. The waits are hang guards, not speed
# targets: how fast reclaim is on an idle machine is measured by make bench.
new_scope storm
pids=()
for i in $(seq 16); do
	spawn "$T/hold.$i" CUDA_DEVICE_MEMORY_LIMIT=256m "$B/test_enforcer" hold $((8 * MiB))
	pids+=($!)
done
for i in $(seq 16); do
	for _ in $(seq 1200); do [ -s "$T/hold.$i" ] && break; sleep 0.05; done
done
check "storm: 16 holders hold 128 MiB" run CUDA_DEVICE_MEMORY_LIMIT=256m "$B/test_enforcer" wait_used $((128 * MiB)) 60000
spids=()
for i in $(seq 4); do
	spawn /dev/null CUDA_DEVICE_MEMORY_LIMIT=256m "$B/test_enforcer" stress 8 2000
	spids+=($!)
done
# The shell reports each killed job; those lines are expected.
{ kill -9 "${pids[@]}"; wait "${pids[@]}"; } 2>/dev/null
if ms=$(run CUDA_DEVICE_MEMORY_LIMIT=256m "$B/test_enforcer" wait_used 0 60000 2>"$T/err"); then
	pass "storm: usage of killed processes reclaimed (after $ms ms)"
else
	fail "storm: usage of killed processes not reclaimed"; cat "$T/err"
fi
hung=0
for p in "${spids[@]}"; do
	for _ in $(seq 2400); do kill -0 "$p" 2>/dev/null || break; sleep 0.05; done
	if kill -0 "$p" 2>/dev/null; then hung=1; kill -9 "$p"; fi
	wait "$p" 2>/dev/null
done
if [ $hung = 0 ]; then pass "storm: allocating processes finish (no hang)"; else fail "storm: a process hung"; fi

# Compute limit: the share of time the stub's kernels run, over 2 s of
# launches. Limiting that is absent gives ~100 %, well outside the bounds.
share() { # name lo hi env...
	local name=$1 lo=$2 hi=$3
	shift 3
	new_scope "share$RANDOM"
	local s
	s=$(run "$@" 2>/dev/null)
	if within "$s" "$lo" "$hi"; then pass "$name: $s %"; else fail "$name: '$s' % not in [$lo, $hi]"; fi
}
share "cores 25" 20 30 CUDA_DEVICE_SM_LIMIT=25 STUB_KERNEL_US=2000 "$B/test_enforcer" share 2 plain
share "cores 50" 45 55 CUDA_DEVICE_SM_LIMIT=50 STUB_KERNEL_US=1000 "$B/test_enforcer" share 2 plain
share "cores 25, _ptsz launches" 20 30 CUDA_DEVICE_SM_LIMIT=25 STUB_KERNEL_US=500 "$B/test_enforcer" share 2 ptsz
share "cores 50, graph launches" 45 55 CUDA_DEVICE_SM_LIMIT=50 STUB_KERNEL_US=700 "$B/test_enforcer" share 2 graph
share "limits file card 0 cores=25" 20 30 MOSAIC_LIMITS_FILE="$GOLDEN/limits-valid.conf" STUB_KERNEL_US=1000 \
	"$B/test_enforcer" share 2 plain
share "no limit" 90 101 STUB_KERNEL_US=1000 "$B/test_enforcer" share 1 plain
share "policy disable" 90 101 CUDA_DEVICE_SM_LIMIT=25 GPU_CORE_UTILIZATION_POLICY=disable STUB_KERNEL_US=1000 \
	"$B/test_enforcer" share 1 plain
# Two processes of one container share one bucket.
new_scope pair
spawn "$T/pair.1" CUDA_DEVICE_SM_LIMIT=50 STUB_KERNEL_US=1000 "$B/test_enforcer" share 2 plain
spawn "$T/pair.2" CUDA_DEVICE_SM_LIMIT=50 STUB_KERNEL_US=1000 "$B/test_enforcer" share 2 plain
wait
sum=$(cat "$T/pair.1" "$T/pair.2" | awk '/^[0-9.]+$/ { s += $1 } END { print s }')
if within "$sum" 45 55; then pass "two processes, cores 50: $sum % together"; else fail "two processes, cores 50: $sum %"; fi

if [ $fails -ne 0 ]; then
	echo "$fails test(s) failed"
	exit 1
fi
echo "all enforcer tests passed"
