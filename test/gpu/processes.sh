#!/usr/bin/env bash
# NVML's process list under the enforcer, on a real GPU: a container (one
# accounting directory) sees its own processes with the memory the
# enforcer counts, and never another container's. Builds the library and
# probe.cu like enforcer.sh; writes $OUT/processes.log and RESULT lines.
#   usage: OUT=/some/dir test/gpu/processes.sh
cd "$(dirname "$0")/../.."
OUT=${OUT:-/tmp/mosaic-gpu}
mkdir -p "$OUT"
W=$(mktemp -d)
exec > >(tee -a "$OUT/processes.log") 2>&1
fails=0
check() { # name, condition (0 = pass)
	if [ "$2" = 0 ]; then echo "RESULT PASS $1"; else echo "RESULT FAIL $1"; fails=$((fails + 1)); fi
}
echo "== $(date -u +%FT%TZ) $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader -i 0)"
[ -e native/build/libmosaic-enforcer.so ] || make -C native all >/dev/null || exit 1
LIB=$PWD/native/build/libmosaic-enforcer.so
nvcc -O2 -arch=sm_90 -o "$W/probe" test/gpu/probe.cu -lcuda || exit 1
UUID=$(nvidia-smi --query-gpu=uuid --format=csv,noheader -i 0 | tr -d ' ')
printf 'mosaic-limits 1\npolicy default\ncard 0 %s memory=%s cores=0\n' "$UUID" $((8 << 30)) >"$W/limits"
ROOT=$(mktemp -d -p /dev/shm)
mkdir -p "$ROOT/a" "$ROOT/b"
inside() { # container cmd...
	local c=$1
	shift
	env LD_PRELOAD="$LIB" MOSAIC_LIMITS_FILE="$W/limits" MOSAIC_SHARED_DIR="$ROOT/$c" "$@"
}
wait_held() { for _ in $(seq 300); do grep -q held "$1" 2>/dev/null && return 0; sleep 0.1; done; return 1; }

# Container a: two processes (1 GiB, 512 MiB); container b: one (2 GiB).
# Each holder execs in its own subshell, so that $! is its pid.
(exec env LD_PRELOAD="$LIB" MOSAIC_LIMITS_FILE="$W/limits" MOSAIC_SHARED_DIR="$ROOT/a" "$W/probe" hold $((1 << 30)) 60) >"$W/a1" &
a1=$!
(exec env LD_PRELOAD="$LIB" MOSAIC_LIMITS_FILE="$W/limits" MOSAIC_SHARED_DIR="$ROOT/a" "$W/probe" hold $((512 << 20)) 60) >"$W/a2" &
a2=$!
(exec env LD_PRELOAD="$LIB" MOSAIC_LIMITS_FILE="$W/limits" MOSAIC_SHARED_DIR="$ROOT/b" "$W/probe" hold $((2 << 30)) 60) >"$W/b1" &
b1=$!
wait_held "$W/a1" && wait_held "$W/a2" && wait_held "$W/b1" || echo "a holder did not start"
echo "pids: a $a1 $a2, b $b1"

# NVML's process list as NVML users read it (pynvml: nvitop, gpustat,
# DCGM's exporters call these functions). nvidia-smi itself looks its
# process calls up through the driver's private export table, which no
# symbol hook sees: its list is shown for the record.
q='import pynvml as n
n.nvmlInit()
h = n.nvmlDeviceGetHandleByIndex(0)
for p in n.nvmlDeviceGetComputeRunningProcesses(h):
    print("%d, %d" % (p.pid, p.usedGpuMemory >> 20))'
echo "== without the enforcer"
python3 -c "$q" | tee "$W/host"
echo "== in container a"
inside a python3 -c "$q" | tee "$W/in-a"
echo "== in container b"
inside b python3 -c "$q" | tee "$W/in-b"
echo "== nvidia-smi in container a (export table: the driver's list)"
inside a nvidia-smi --query-compute-apps=pid,used_memory --format=csv,noheader,nounits

has() { awk -F', *' -v p="$2" -v m="$3" '$1 == p && (m == "" || $2 == m) { f = 1 } END { exit !f }' "$1"; }
check "container a lists its processes $a1 (1024 MiB) and $a2 (512 MiB)" \
	"$(has "$W/in-a" $a1 1024 && has "$W/in-a" $a2 512; echo $?)"
check "container a does not list container b's $b1" "$(! has "$W/in-a" $b1; echo $?)"
check "container b lists only $b1 (2048 MiB)" \
	"$(has "$W/in-b" $b1 2048 && [ "$(grep -c . "$W/in-b")" = 1 ]; echo $?)"
kill $a1 $a2 $b1 2>/dev/null
wait $a1 $a2 $b1 2>/dev/null
rm -rf "$ROOT" "$W"
echo "== $(date -u +%FT%TZ) done: $fails failed check(s)"
exit $((fails != 0))
