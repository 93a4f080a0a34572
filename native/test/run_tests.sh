#!/usr/bin/env bash
# Runs the enforcer's tests over the stub driver (no GPU): make -C native test.
set -u
cd "$(dirname "$0")/.."
B=$PWD/build
GOLDEN=$PWD/../pkg/device/testdata
STUB_UUID0=GPU-6c8b3c2e-1f3a-4d9e-9b1a-0a1b2c3d4e5f
STUB_UUID1=GPU-0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0
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
new_scope procs
check "NVML process lists: the container's own processes by their pids, never the host's" \
	run CUDA_DEVICE_MEMORY_LIMIT=256m TEST_OWN=1 "$B/test_enforcer" procs
new_scope procs-none
check "NVML process lists of a card the container holds no share of: the driver's" \
	run TEST_OWN=0 "$B/test_enforcer" procs
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

# A container the node agent prepared (its shared directory is mounted):
# the agent's files only. A missing limits file fails closed, whatever the
# environment names, and a process pointed at another shared directory
# still accounts with the container's others. (build/rooted has its
# container paths under build/run instead of /run/mosaic.)
RUN=$B/run
rooted() {
	env -i PATH="$PATH" LD_LIBRARY_PATH="$B/stub" LD_PRELOAD="$B/rooted/libmosaic-enforcer.so" MOSAIC_ENFORCER_LOG=quiet "$@"
}
rm -rf "$RUN"
mkdir -p "$RUN/shared"
check "prepared container without its limits file fails closed" \
	rooted MOSAIC_LIMITS_FILE="$GOLDEN/limits-valid.conf" "$B/test_enforcer" failclosed
cp "$GOLDEN/limits-valid.conf" "$RUN/limits.conf"
mkdir -p "$T/elsewhere.1" "$T/elsewhere.2"
# Started as spawn starts its processes, so that $! is test_enforcer itself
# (env execs it) and the kill below cannot leave it running.
env -i PATH="$PATH" LD_LIBRARY_PATH="$B/stub" LD_PRELOAD="$B/rooted/libmosaic-enforcer.so" MOSAIC_ENFORCER_LOG=quiet \
	MOSAIC_SHARED_DIR="$T/elsewhere.1" "$B/test_enforcer" hold $((3 << 30)) >"$T/prep.1" 2>&1 &
prep=$!
for _ in $(seq 1200); do [ -s "$T/prep.1" ] && break; sleep 0.05; done
second=$(rooted MOSAIC_SHARED_DIR="$T/elsewhere.2" timeout 60 "$B/test_enforcer" hold $((3 << 30)) 2>&1 | head -n1)
{ kill -9 $prep; wait $prep; } 2>/dev/null
if [ "$(cat "$T/prep.1")" = held ] && [ "$second" = refused ]; then
	pass "prepared container: MOSAIC_SHARED_DIR cannot split its 4 GiB into two"
else
	fail "prepared container: first '$(cat "$T/prep.1")', second '$second' (want held, refused)"
fi
rm -rf "$RUN"

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

# Compute limit, on the stub's asynchronous GPU (kernels queue and run on a
# timeline; processes sharing STUB_SHARED_FILE take turns like contexts). A
# share is the union of the process's busy time over wall time. Upper bounds
# are the limit's promise; lower bounds are loose, since a process starved
# of CPU on a loaded machine cannot keep the GPU busy. Precision is measured
# on a real card by test/gpu/compute.sh.
share() { # name lo hi env...
	local name=$1 lo=$2 hi=$3
	shift 3
	new_scope "share$RANDOM"
	local s
	s=$(run "$@" 2>"$T/err" | tail -n1)
	if within "$s" "$lo" "$hi"; then pass "$name: $s %"; else fail "$name: '$s' % not in [$lo, $hi]"; cat "$T/err"; fi
}
F="GPU_CORE_UTILIZATION_POLICY=force"
share "force 25, 1 ms kernels" 15 28 CUDA_DEVICE_SM_LIMIT=25 $F STUB_KERNEL_US=1000 "$B/test_enforcer" share 2 plain
share "force 50, 1 ms kernels" 40 53 CUDA_DEVICE_SM_LIMIT=50 $F STUB_KERNEL_US=1000 "$B/test_enforcer" share 2 plain
share "force 25, 20 us kernels" 15 28 CUDA_DEVICE_SM_LIMIT=25 $F STUB_KERNEL_US=20 "$B/test_enforcer" share 2 plain
share "force 25, 25 ms kernels" 18 31 CUDA_DEVICE_SM_LIMIT=25 $F STUB_KERNEL_US=25000 "$B/test_enforcer" share 4 plain
share "force 25, _ptsz launches" 15 28 CUDA_DEVICE_SM_LIMIT=25 $F STUB_KERNEL_US=500 "$B/test_enforcer" share 2 ptsz
share "force 50, graph launches" 40 53 CUDA_DEVICE_SM_LIMIT=50 $F STUB_KERNEL_US=700 "$B/test_enforcer" share 2 graph
share "force 25, 4 threads on 4 streams: charged once" 15 28 CUDA_DEVICE_SM_LIMIT=25 $F STUB_KERNEL_US=500 \
	"$B/test_enforcer" streams 2 4
# Threads on their own streams, each running steps (10 kernels, then a
# wait): each gets its turn in the order it began to wait, so steps stay
# even and no thread starves (served in the order they woke, one thread of
# four made a third of another's steps, p99/median 3-5). Whether kernels of
# several streams run side by side or one after another (each filling the
# card), the work in flight is predicted as it is charged. The bounds catch
# starvation, not spread: an idle host gives p99/median 1.1-1.4 and
# fewest/most 0.8-1, one loaded by parallel builds up to 7 and 0.76.
stream_steps() { # name, env...
	local name=$1 out s ratio fair
	shift
	new_scope "ss$RANDOM"
	if out=$(run "$@" "$B/test_enforcer" stream_steps 4 4 10 500 2>"$T/err") && read -r s ratio fair <<<"$out" &&
		within "$s" 18 30 && within "$ratio" 0 10 && within "$fair" 0.5 1; then
		pass "$name: $s %, p99/median step $ratio, fewest/most steps $fair"
	else
		fail "$name: '$out' (share, p99/median, fewest/most steps of a thread)"; cat "$T/err"
	fi
}
stream_steps "force 25, 4 threads' steps on streams that overlap" CUDA_DEVICE_SM_LIMIT=25 $F
stream_steps "force 25, 4 threads' steps on streams that take turns" CUDA_DEVICE_SM_LIMIT=25 $F STUB_STREAMS_SERIAL=1
share "limits file cores=25, policy force from env" 15 28 MOSAIC_LIMITS_FILE="$GOLDEN/limits-valid.conf" $F \
	STUB_KERNEL_US=1000 "$B/test_enforcer" share 2 plain
share "default 25 alone lends itself the idle card" 80 101 CUDA_DEVICE_SM_LIMIT=25 STUB_KERNEL_US=1000 \
	"$B/test_enforcer" share 2 plain
share "no limit" 80 101 STUB_KERNEL_US=1000 "$B/test_enforcer" share 1 plain
share "policy disable" 80 101 CUDA_DEVICE_SM_LIMIT=25 GPU_CORE_UTILIZATION_POLICY=disable STUB_KERNEL_US=1000 \
	"$B/test_enforcer" share 1 plain

# A loop that waits for its kernels and then works on the host (a training
# step) keeps its share and a stable step time: neither the wait, the host
# work nor a throttle sleep is charged as GPU time. Charging them ran away:
# each step several times longer than the last, which the median step of
# the run's last quarter over its first catches whatever the host's load
# (at most 1.3). p99/median bounds the spread loosely: a loaded host's
# oversleeping alone took it to 1.9 here; the card's own bound (1.5) is
# test/gpu's.
steps() { # name, share lo hi, most p99/median, env and test_enforcer steps arguments...
	local name=$1 lo=$2 hi=$3 most=$4 out s ratio growth
	shift 4
	new_scope "steps$RANDOM"
	if out=$(run "$@" 2>"$T/err") && read -r s ratio growth <<<"$out" && within "$s" "$lo" "$hi" &&
		within "$ratio" 0 "$most" && within "$growth" 0.7 1.3; then
		pass "$name: $s %, p99/median step $ratio, last/first quarter $growth"
	else
		fail "$name: '$out' (share, p99/median, last/first quarter)"; cat "$T/err"
	fi
}
steps "force 50, steps with waits and host gaps" 43 53 3 CUDA_DEVICE_SM_LIMIT=50 $F "$B/test_enforcer" steps 4 8 500 1000

# One 25 ms kernel a step at force 50: every step waits for its own
# budget, so steps are even (deciding on charges not yet read let every
# other step through free: p99/median was 3.9, where a loaded host gives
# 1.6 at most).
steps "force 50, one 25 ms kernel a step" 40 53 2.5 CUDA_DEVICE_SM_LIMIT=50 $F "$B/test_enforcer" steps 4 1 25000 0

# The first launch of a kernel can stall on the host (its module loaded
# lazily: tens of ms as a workload starts). That is not GPU time: charged,
# at force 10 a 100 ms stall cost the next step a second (on the H200 the
# first step of a matmul loop took 1.1 s, 8 times the others; here 20
# times, against 1.1 now: the bound of 6 leaves room for a loaded host).
startup() { # name, env...: the longest step over the median, at most 6
	local name=$1 r
	shift
	new_scope "startup$RANDOM"
	if r=$(run CUDA_DEVICE_SM_LIMIT=10 $F "$@" "$B/test_enforcer" startup 3 5000 2>"$T/err") && within "$r" 0 6; then
		pass "force 10, $name is not charged: longest step $r x median"
	else
		fail "force 10, $name: '$r' x median"; cat "$T/err"
	fi
}
startup "a stalled first launch" STUB_FIRST_LAUNCH_US=100000
# Nor is host work between two launches before their durations are known.
startup "host work between the first launches" TEST_SETUP_GAP_US=100000

# A host-bound loop (100 us kernels, each followed by 200 us of host work)
# keeps the card about half busy. A force 75 limit must not slow it: the
# idle gaps between its kernels are not its GPU time. It is compared with the
# same loop unlimited just before, since a loaded host slows both alike. A
# force 25 limit holds it to 25.
new_scope gaps
if u=$(run "$B/test_enforcer" gaps 2 100 200 2>"$T/err") && l=$(run CUDA_DEVICE_SM_LIMIT=75 $F "$B/test_enforcer" gaps 2 100 200 2>>"$T/err") &&
	within "$l" "$(awk -v u="$u" 'BEGIN { print u - 6 }')" 78; then
	pass "force 75, host-bound loop keeps what it uses: $l % (unlimited $u %)"
else
	fail "force 75, host-bound loop: '$l' % (unlimited '$u' %)"; cat "$T/err"
fi
share "force 25, host-bound loop" 12 28 CUDA_DEVICE_SM_LIMIT=25 $F "$B/test_enforcer" gaps 2 100 200

# The same with kernels shorter than the launch latency (3 us kernels, 10 us
# of host work each, kernels starting 10 us after their launch call on an
# idle stream, as on a real card). A launch timed between two events reads
# 13 us, four times its length: charged so, the loop would be held far
# below what it uses (force 40 held it at 11 %). The timed launch's start
# is held until the launch is queued, so its timing is the kernel's own.
# keeps: the loop unlimited, then under force cores; the limited run must
# keep at least factor x min(unlimited, cores) and stay under hi.
keeps() { # name, cores, factor, hi, env words, test_enforcer arguments...
	local name=$1 cores=$2 factor=$3 hi=$4 env=$5 u l
	shift 5
	new_scope "keeps$RANDOM"
	if u=$(run $env "$B/test_enforcer" "$@" 2>"$T/err") && l=$(run $env CUDA_DEVICE_SM_LIMIT="$cores" $F "$B/test_enforcer" "$@" 2>>"$T/err") &&
		within "$l" "$(awk -v u="$u" -v c="$cores" -v f="$factor" 'BEGIN { print (u < c ? u : c) * f }')" "$hi"; then
		pass "force $cores, $name: $l % (unlimited $u %)"
	else
		fail "force $cores, $name: '$l' % (unlimited '$u' %)"; cat "$T/err"
	fi
}
keeps "held timings: kernels shorter than the launch latency keep what they use" 40 0.75 43 \
	"STUB_LAUNCH_LATENCY_US=10 MOSAIC_TIMING_HOLD=1" gaps 2 3 10
# A kernel behind a held start event starts once dispatched, a constant
# after the event completed (1.4 us on an H200; 2 us here): held timings
# read that much long, and a loop of 5 us kernels was held at 18 % by a
# force 25 limit. The enforcer measures the constant per context (held
# memsets, one and 32 back to back) and takes it off.
keeps "held timings less their dispatch: 5 us kernels keep their share" 25 0.88 28 \
	"STUB_LAUNCH_LATENCY_US=10 STUB_DISPATCH_NS=2000" gaps 2 5 10
# A launch call that waits for the device to go idle (lazy loading of a
# kernel) while its own stream is held would wait forever: the watchdog lets
# the hold go within milliseconds. test_enforcer fails on any hold the stub
# had to let go itself after a second; timeout is the hang guard.
new_scope holdsync
if l=$(run timeout 60 env STUB_LAUNCH_LATENCY_US=10 MOSAIC_TIMING_HOLD=1 STUB_LAUNCH_SYNC_EVERY=7 CUDA_DEVICE_SM_LIMIT=40 $F \
	"$B/test_enforcer" gaps 2 3 10 2>"$T/err"); then
	pass "held timings: a launch that waits for an idle device does not hang ($l %)"
else
	fail "held timings: a launch that waits for an idle device: '$l'"; cat "$T/err"
fi

# Graph capture in global mode while another thread launches: the capture
# stays valid (the enforcer records and queries no event while it runs) and
# replays are charged like kernels.
share "force 30, capture then replay" 20 33 CUDA_DEVICE_SM_LIMIT=30 $F STUB_KERNEL_US=200 "$B/test_enforcer" capture 2

# Two processes of one container share one limit.
new_scope pair
spawn "$T/pair.1" CUDA_DEVICE_SM_LIMIT=50 $F STUB_KERNEL_US=1000 STUB_SHARED_FILE="$T/pair.ctr" "$B/test_enforcer" share 2 plain
spawn "$T/pair.2" CUDA_DEVICE_SM_LIMIT=50 $F STUB_KERNEL_US=1000 STUB_SHARED_FILE="$T/pair.ctr" "$B/test_enforcer" share 2 plain
wait
sum=$(cat "$T/pair.1" "$T/pair.2" | awk '/^[0-9.]+$/ { s += $1 } END { print s }')
if within "$sum" 38 53; then pass "two processes of one container, force 50: $sum % together"; else fail "two processes of one container, force 50: $sum %"; fi

# Containers on one card: each has its own accounting directory; they meet in
# the card's region, as the node agent mounts it.
CARDS=$T/cards
mkdir -p "$CARDS/$STUB_UUID0"
container() { # output, env and command...: a process of a new container on the shared card
	local out=$1
	shift
	mkdir -p "$T/c.$out"
	env -i PATH="$PATH" LD_LIBRARY_PATH="$B/stub" LD_PRELOAD="$B/libmosaic-enforcer.so" \
		MOSAIC_SHARED_DIR="$T/c.$out" MOSAIC_CARD_DIR="$CARDS" STUB_SHARED_FILE="$T/card.ctr" \
		MOSAIC_ENFORCER_LOG=quiet "$@" >"$T/$out" 2>&1 &
}
together() { # name, then "cores policy lo hi" for each container
	local name=$1 i=0 ok=1 got=""
	shift
	rm -rf "$CARDS/$STUB_UUID0"/* "$T/card.ctr"
	for spec in "$@"; do
		read -r cores policy _ _ <<<"$spec"
		container "tog.$i" CUDA_DEVICE_SM_LIMIT="$cores" GPU_CORE_UTILIZATION_POLICY="$policy" STUB_KERNEL_US=1000 \
			"$B/test_enforcer" share 3 plain
		i=$((i + 1))
	done
	wait
	i=0
	for spec in "$@"; do
		read -r cores _ lo hi <<<"$spec"
		s=$(tail -n1 "$T/tog.$i")
		got="$got $cores:$s"
		within "$s" "$lo" "$hi" || ok=0
		i=$((i + 1))
	done
	if [ $ok = 1 ]; then pass "$name:$got"; else fail "$name: got$got"; fi
}
together "two containers force 50/50" "50 force 38 53" "50 force 38 53"
together "two containers force 30/70" "30 force 20 33" "70 force 55 73"
together "three containers default 20/30/50, all busy" "20 default 12 25" "30 default 20 35" "50 default 38 56"
together "best effort beside force 50 gets what is left" "0 default 20 60" "50 force 38 53"
together "best effort beside default 50 gets little" "0 default 0 20" "50 default 75 101"

# A container on two cards (NCCL ranks, one per card, wait for each other)
# takes its turns on both together: X (50 on cards 0 and 1) beside Y on
# card 0 and Z on card 1, both 50, started out of step. Of the less busy
# card's time X had, the share when the other card ran X's work too: 35-63 %
# when each card's turns went their own way, 72-84 % aligned.
aligned() { # policy
	rm -rf "$CARDS" "$T/card.ctr"
	mkdir -p "$CARDS/$STUB_UUID0" "$CARDS/$STUB_UUID1"
	local e="CUDA_DEVICE_SM_LIMIT=50 GPU_CORE_UTILIZATION_POLICY=$1 STUB_KERNEL_US=1000"
	container al.y $e "$B/test_enforcer" cards 4 0
	sleep 0.013
	container al.z $e "$B/test_enforcer" cards 4 1
	sleep 0.006
	container al.x $e "$B/test_enforcer" cards 3.8 01
	wait
	local y z x0 x1 both
	read -r y <"$T/al.y"
	read -r z <"$T/al.z"
	read -r x0 x1 both <"$T/al.x"
	if within "$y" 38 53 && within "$z" 38 53 && within "$x0" 38 53 && within "$x1" 38 53 && within "$both" 68 101; then
		pass "$1 50 on two cards beside a neighbour on each: together $both % of the time (X $x0 / $x1 %, Y $y %, Z $z %)"
	else
		fail "$1 50 on two cards: together '$both' % (X '$x0' / '$x1', Y '$y', Z '$z')"; cat "$T/al.x"
	fi
	rm -rf "$CARDS" "$T/card.ctr"
	mkdir -p "$CARDS/$STUB_UUID0"
}
aligned force
aligned default

# default lends idle time and takes it back: A (30) alone, then B (70)
# arrives for 1.5 s, then A alone again.
rm -rf "$CARDS/$STUB_UUID0"/* "$T/card.ctr"
container lend.a CUDA_DEVICE_SM_LIMIT=30 STUB_KERNEL_US=1000 "$B/test_enforcer" windows 4.5 0.2 0.9 1.5 2.4 3.4 4.4
sleep 1
container lend.b CUDA_DEVICE_SM_LIMIT=70 STUB_KERNEL_US=1000 "$B/test_enforcer" windows 1.5 0.3 1.4
wait
read -r a1 a2 a3 <"$T/lend.a"
b=$(cat "$T/lend.b")
if within "$a1" 75 101 && within "$a2" 20 38 && within "$b" 55 78 && within "$a3" 75 101; then
	pass "default lends and takes back: A alone $a1 %, beside B $a2 % (B $b %), alone again $a3 %"
else
	fail "default lends and takes back: A alone '$a1', beside B '$a2' (B '$b'), alone again '$a3'"
fi

# Idle, then busy: a force container is at its share at once after a pause,
# with no stall and no burst of saved-up time.
rm -rf "$CARDS/$STUB_UUID0"/* "$T/card.ctr"
container idle.a CUDA_DEVICE_SM_LIMIT=30 $F STUB_KERNEL_US=1000 TEST_PAUSE="1 2" "$B/test_enforcer" windows 5 3.0 4.0
wait
s=$(cat "$T/idle.a")
if within "$s" 18 36; then pass "force 30, busy after 2 s idle: $s % in the first second"; else fail "force 30 after idle: '$s' %"; fi

# A container killed with -9 while it takes turns frees the card: its lease
# expires and its waiting stops counting. B, beside it, then has the card.
rm -rf "$CARDS/$STUB_UUID0"/* "$T/card.ctr"
container dead.a CUDA_DEVICE_SM_LIMIT=50 STUB_KERNEL_US=1000 TEST_READY_FILE="$T/dead.a.ready" \
	"$B/test_enforcer" windows 60 0 1
apid=$!
container dead.b CUDA_DEVICE_SM_LIMIT=50 STUB_KERNEL_US=1000 TEST_READY_FILE="$T/dead.b.ready" \
	"$B/test_enforcer" windows 4 2.5 3.9
for _ in $(seq 1200); do [ -e "$T/dead.a.ready" ] && [ -e "$T/dead.b.ready" ] && break; sleep 0.05; done
sleep 1
{ kill -9 $apid; wait $apid; } 2>/dev/null
wait
s=$(cat "$T/dead.b")
if within "$s" 75 101; then pass "a killed neighbour frees the card: $s % afterwards"; else fail "a killed neighbour: '$s' % afterwards"; fi

if [ $fails -ne 0 ]; then
	echo "$fails test(s) failed"
	exit 1
fi
echo "all enforcer tests passed"
