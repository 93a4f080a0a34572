#!/usr/bin/env bash
# The enforcer on a real GPU: builds libmosaic-enforcer with gcc and the
# probes with nvcc, then checks memory limits (CUDA runtime, PyTorch,
# nvidia-smi, two processes sharing one limit) and measures compute shares,
# launch and alloc/free overhead, a PyTorch training step and the init time
# of 256 processes started at once. Writes $OUT/log and $OUT/results.txt;
# exits non-zero if a check failed.
#   usage: OUT=/some/dir test/gpu/enforcer.sh
# No set -e: every check runs and is reported.
cd "$(dirname "$0")/../.."
OUT=${OUT:-/tmp/mosaic-gpu}
mkdir -p "$OUT"
W=$(mktemp -d)
RES=$OUT/results.txt
: >"$RES"
exec > >(tee -a "$OUT/log") 2>&1
fails=0
result() { echo "RESULT $*" | tee -a "$RES"; }
check() { # name, condition (0 = pass)
	if [ "$2" = 0 ]; then result "PASS $1"; else result "FAIL $1"; fails=$((fails + 1)); fi
}
median() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
pctl() { sort -g | awk -v p="$1" '{ v[NR] = $1 } END { i = int(NR * p / 100); if (i < 1) i = 1; print v[i] }'; }
within() { awk -v v="$1" -v lo="$2" -v hi="$3" 'BEGIN { exit !(v >= lo && v <= hi) }'; }

echo "== $(date -u +%FT%TZ)"
nvidia-smi --query-gpu=name,driver_version,memory.total,uuid --format=csv,noheader
gcc --version | head -1
nvcc --version | tail -1
python3 -c 'import torch; print("torch", torch.__version__)'

make -C native clean all || exit 1
LIB=$PWD/native/build/libmosaic-enforcer.so
nvcc -O2 -arch=sm_90 -o "$W/probe" test/gpu/probe.cu -lcuda || exit 1
gcc -O2 -std=c11 -Inative/include -o "$W/initprobe" test/gpu/initprobe.c -ldl || exit 1
P=$W/probe

UUID=$(nvidia-smi --query-gpu=uuid --format=csv,noheader -i 0 | tr -d ' ')
GiB=$((1 << 30))
LIMIT=$((4 * GiB))
limits() { # file memory cores [policy]
	printf 'mosaic-limits 1\npolicy %s\ncard 0 %s memory=%s cores=%s\n' "${4:-default}" "$UUID" "$2" "$3" >"$1"
}
limits "$W/mem.conf" $LIMIT 0
# force: a lone container under default may use the idle card (docs/enforcer.md).
limits "$W/c25.conf" 0 25 force
limits "$W/c50.conf" 0 50 force
limits "$W/c99.conf" 0 99
limits "$W/big.conf" $((120 * GiB)) 0 # accounting on, never binding
[ -e /run/mosaic/limits.conf ] && echo "WARNING: /run/mosaic/limits.conf exists and wins over MOSAIC_LIMITS_FILE"
# A container is a shared accounting directory; scope starts a fresh one.
# On tmpfs, as /run/mosaic/shared is in production.
SHROOT=$(mktemp -d -p /dev/shm 2>/dev/null || mktemp -d)
n=0
scope() {
	n=$((n + 1))
	SH=$SHROOT/shared.$n
	mkdir -p "$SH"
}
# with FILE cmd...: under the enforcer, limits from FILE, in the current container.
with() {
	local f=$1
	shift
	env LD_PRELOAD="$LIB" MOSAIC_LIMITS_FILE="$f" MOSAIC_SHARED_DIR="$SH" "$@"
}
scope

echo "== memory limit $LIMIT (CUDA runtime)"
with "$W/mem.conf" "$P" oom $LIMIT
check "runtime: past the limit is OOM, below succeeds, cudaMemGetInfo shows the limit" $?

echo "== memory limit (PyTorch)"
scope
with "$W/mem.conf" python3 test/gpu/torch_check.py mem $LIMIT
check "torch: mem_get_info shows the limit, past it raises OutOfMemoryError" $?

echo "== nvidia-smi"
nvidia-smi --query-gpu=memory.total,memory.used --format=csv,noheader,nounits
smi=$(with "$W/mem.conf" nvidia-smi --query-gpu=memory.total --format=csv,noheader,nounits | tr -d ' ')
echo "under the enforcer: total $smi MiB"
with "$W/mem.conf" nvidia-smi | head -12
check "nvidia-smi under the enforcer shows total $((LIMIT >> 20)) MiB (saw $smi)" "$([ "$smi" = $((LIMIT >> 20)) ]; echo $?)"

echo "== two processes, one limit"
scope
with "$W/mem.conf" "$P" hold $((3 * GiB)) 20 >"$W/hold.out" &
holder=$!
for _ in $(seq 200); do grep -q held "$W/hold.out" 2>/dev/null && break; sleep 0.1; done
cat "$W/hold.out"
with "$W/mem.conf" "$P" try $((2 * GiB))
r1=$?
with "$W/mem.conf" "$P" try $((512 << 20))
r2=$?
smi=$(with "$W/mem.conf" nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits | tr -d ' ')
echo "nvidia-smi used under the enforcer while another process holds 3 GiB: $smi MiB"
kill "$holder" 2>/dev/null
wait "$holder" 2>/dev/null
check "two processes: 3 GiB held, 2 GiB more refused ($r1=3), 512 MiB granted ($r2=0)" \
	"$([ $r1 = 3 ] && [ $r2 = 0 ]; echo $?)"
check "two processes: nvidia-smi used shows the container's 3072 MiB (saw $smi)" "$([ "$smi" = 3072 ]; echo $?)"

echo "== compute limit (busy kernels of 500 us, 4 s each)"
spin() { "$@" spin 4 | tee "$W/spin.out" | grep -E "^spin|second 1 " >&2; awk '/^spin/ { print $3 }' "$W/spin.out"; }
first() { awk '/^second 1 / { print $4 }' "$W/spin.out"; }
k0=$(spin "$P")
scope
k25=$(spin with "$W/c25.conf" "$P")
k25f=$(first)
scope
k50=$(spin with "$W/c50.conf" "$P")
k50f=$(first)
s25=$(awk -v a="$k25" -v b="$k0" 'BEGIN { printf "%.1f", 100 * a / b }')
s50=$(awk -v a="$k50" -v b="$k0" 'BEGIN { printf "%.1f", 100 * a / b }')
# The first second against the unlimited steady rate (the unlimited first
# second also counts the launches that fill the queue).
f25=$(awk -v a="$k25f" -v b="$k0" 'BEGIN { printf "%.1f", 100 * a / b }')
f50=$(awk -v a="$k50f" -v b="$k0" 'BEGIN { printf "%.1f", 100 * a / b }')
result "compute: unlimited $k0 kernels/s; cores=25 -> $s25 % (first second $f25 %); cores=50 -> $s50 % (first second $f50 %)"
check "compute: cores=25 share $s25 % within 25 +- 5" "$(within "$s25" 20 30; echo $?)"
check "compute: cores=50 share $s50 % within 50 +- 5" "$(within "$s50" 45 55; echo $?)"

echo "== launch overhead (200000 empty launches per run, 5 rounds alternating)"
for round in 1 2 3 4 5; do
	"$P" launch 200000 | tee -a "$W/l.none"
	scope
	with "$W/big.conf" "$P" launch 200000 | tee -a "$W/l.enf"
	with "$W/c50.conf" "$P" launch 200000 | tee -a "$W/l.c50"
	with "$W/c99.conf" "$P" launch 200000 | tee -a "$W/l.c99"
done
col() { awk -v k="$2" '{ for (i = 1; i < NF; i++) if ($i == k) print $(i + 1) }' "$1"; }
for f in none enf c50 c99; do
	eval "lm_$f=$(col "$W/l.$f" median_ns | median) lp_$f=$(col "$W/l.$f" p99_ns | median)"
done
result "launch ns: native median $lm_none p99 $lp_none; enforcer (memory limit) median $lm_enf p99 $lp_enf; enforcer (cores=50) median $lm_c50 p99 $lp_c50"
result "launch ns: enforcer (cores=99) median $lm_c99 p99 $lp_c99"
result "launch overhead ns: no compute limit: median diff $((lm_enf - lm_none)) p99 diff $((lp_enf - lp_none)); cores=99 (limited path, rarely throttled): median diff $((lm_c99 - lm_none)) p99 diff $((lp_c99 - lp_none)); cores=50 (this launch-bound loop is throttled to half): median diff $((lm_c50 - lm_none)) p99 diff $((lp_c50 - lp_none))"

echo "== alloc/free overhead (20000 x cudaMalloc+cudaFree 1 MiB, 5 rounds alternating)"
for round in 1 2 3 4 5; do
	"$P" alloc 20000 | tee -a "$W/a.none"
	scope
	with "$W/big.conf" "$P" alloc 20000 | tee -a "$W/a.enf"
done
am_none=$(col "$W/a.none" median_ns | median)
ap_none=$(col "$W/a.none" p99_ns | median)
am_enf=$(col "$W/a.enf" median_ns | median)
ap_enf=$(col "$W/a.enf" p99_ns | median)
result "alloc+free ns: native median $am_none p99 $ap_none; enforcer median $am_enf p99 $ap_enf; median diff $((am_enf - am_none)) p99 diff $((ap_enf - ap_none))"

echo "== PyTorch training step, unlimited (8 x Linear 4096 bf16, batch 4096), 2 rounds alternating"
for round in 1 2; do
	python3 test/gpu/torch_check.py step 150 | tee -a "$W/t.none"
	scope
	with "$W/big.conf" python3 test/gpu/torch_check.py step 150 | tee -a "$W/t.enf"
done
tm_none=$(col "$W/t.none" median_ms | median)
tm_enf=$(col "$W/t.enf" median_ms | median)
result "torch step ms: native $tm_none, enforcer $tm_enf, diff $(awk -v a="$tm_enf" -v b="$tm_none" 'BEGIN { printf "%.3f ms (%.2f %%)", a - b, 100 * (a - b) / b }')"

echo "== 256 processes starting at once: time of the first hooked call"
for mode in none enf; do
	rm -rf "$W/init" && mkdir -p "$W/init"
	scope
	pids=()
	for i in $(seq 256); do
		if [ $mode = none ]; then
			timeout 120 "$W/initprobe" "$W/init/go" >"$W/init/out.$i" 2>&1 &
		else
			env LD_PRELOAD="$LIB" MOSAIC_LIMITS_FILE="$W/big.conf" MOSAIC_SHARED_DIR="$SH" \
				timeout 120 "$W/initprobe" "$W/init/go" >"$W/init/out.$i" 2>&1 &
		fi
		pids+=($!)
	done
	t0=$(date +%s.%N)
	for _ in $(seq 600); do [ "$(ls "$W/init" | grep -c ready)" -ge 256 ] && break; sleep 0.1; done
	echo "$mode: $(ls "$W/init" | grep -c ready) ready after $(awk -v a="$(date +%s.%N)" -v b="$t0" 'BEGIN { printf "%.1f", a - b }') s"
	touch "$W/init/go"
	wait "${pids[@]}"
	cat "$W/init"/out.* | awk '{ print $1 }' >"$W/init.$mode"
	echo "$mode: $(wc -l <"$W/init.$mode") processes, totals seen: $(cat "$W/init"/out.* | awk '{ print $2 }' | sort -u | tr '\n' ' ')"
	eval "i50_$mode=$(median <"$W/init.$mode") i99_$mode=$(pctl 99 <"$W/init.$mode") imax_$mode=$(pctl 100 <"$W/init.$mode")"
done
result "init ns (256 at once): native median $i50_none p99 $i99_none; enforcer median $i50_enf p99 $i99_enf max $imax_enf"

rm -rf "$SHROOT"
echo "== $(date -u +%FT%TZ) done: $fails failed check(s)"
cat "$RES"
exit $((fails != 0))
