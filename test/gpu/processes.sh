#!/usr/bin/env bash
# NVML's process lists under the enforcer, on a real GPU, with each
# container in its own PID namespace as in a pod without hostPID: a
# container sees its own processes (by the pids it knows them by) and
# never another container's, through NVML (the enforcer's answer, with the
# memory it counts) and through nvidia-smi (the driver's own answer, which
# it filters by PID namespace). Needs root for unshare(1). Builds the
# library and probe.cu like enforcer.sh; writes $OUT/processes.log and
# RESULT lines.
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
# A container: a new PID namespace (its init is a shell, pid 1) running
# one holder per size, each under the enforcer with the container's
# accounting directory; the holders' pids inside are in $W/<c>.pids.
container() { # name sizes...
	local c=$1
	shift
	mkdir -p "$ROOT/$c"
	unshare -p -f --mount-proc env LD_PRELOAD="$LIB" MOSAIC_LIMITS_FILE="$W/limits" MOSAIC_SHARED_DIR="$ROOT/$c" \
		bash -c 'd=$1; shift; for s in "$@"; do "$0" hold "$s" 60 >"$d.$s" & echo $! >>"$d.pids"; done; wait' "$W/probe" "$W/$c" "$@" 2>/dev/null &
}
# ns c: the host pid of container c's init, for nsenter.
ns() { pgrep -P "$(cat "$W/$1.unshare")"; }
inside() { # container cmd...
	local c=$1
	shift
	nsenter -t "$(ns "$c")" -p -m env LD_PRELOAD="$LIB" MOSAIC_LIMITS_FILE="$W/limits" MOSAIC_SHARED_DIR="$ROOT/$c" "$@"
}
wait_held() { for _ in $(seq 300); do grep -q held "$1" 2>/dev/null && return 0; sleep 0.1; done; return 1; }

# Container a: two processes (1 GiB, 512 MiB); container b: one (2 GiB).
container a $((1 << 30)) $((512 << 20))
echo $! >"$W/a.unshare"
container b $((2 << 30))
echo $! >"$W/b.unshare"
wait_held "$W/a.$((1 << 30))" && wait_held "$W/a.$((512 << 20))" && wait_held "$W/b.$((2 << 30))" || echo "a holder did not start"
read -r a1 a2 < <(tr '\n' ' ' <"$W/a.pids")
read -r b1 < "$W/b.pids"
echo "pids inside: a $a1 $a2, b $b1; namespaces' init on the host: a $(ns a), b $(ns b)"

# NVML's process list as NVML users read it (pynvml: nvitop, gpustat,
# DCGM's exporters call these functions), and nvidia-smi's, which comes
# from the driver's private export table, past any symbol hook: the driver
# itself lists only the caller's PID namespace, by its pids.
q='import pynvml as n
n.nvmlInit()
h = n.nvmlDeviceGetHandleByIndex(0)
for p in n.nvmlDeviceGetComputeRunningProcesses(h):
    print("%d, %d" % (p.pid, p.usedGpuMemory >> 20))'
smi() { "$@" nvidia-smi --query-compute-apps=pid,used_memory --format=csv,noheader,nounits; }
echo "== host, without the enforcer: pynvml, nvidia-smi"
python3 -c "$q" | tee "$W/host"
smi env | tee "$W/host-smi"
for c in a b; do
	echo "== in container $c: pynvml, nvidia-smi, nvidia-smi's memory (total, used MiB)"
	inside $c python3 -c "$q" | tee "$W/in-$c"
	smi inside $c | tee "$W/smi-$c"
	inside $c nvidia-smi --query-gpu=memory.total,memory.used --format=csv,noheader,nounits | tee "$W/mem-$c"
done
inside a nvidia-smi | tail -n 6

has() { awk -F', *' -v p="$2" -v m="$3" '$1 == p && (m == "" || $2 == m) { f = 1 } END { exit !f }' "$1"; }
lines() { grep -c . "$1"; }
check "host lists all three holders" "$([ "$(lines "$W/host")" -ge 3 ] && [ "$(lines "$W/host-smi")" -ge 3 ]; echo $?)"
check "container a (NVML) lists $a1 (1024 MiB) and $a2 (512 MiB) only" \
	"$(has "$W/in-a" $a1 1024 && has "$W/in-a" $a2 512 && [ "$(lines "$W/in-a")" = 2 ]; echo $?)"
check "container b (NVML) lists only $b1 (2048 MiB)" \
	"$(has "$W/in-b" $b1 2048 && [ "$(lines "$W/in-b")" = 1 ]; echo $?)"
check "nvidia-smi in a lists $a1 and $a2 only" \
	"$(has "$W/smi-a" $a1 && has "$W/smi-a" $a2 && [ "$(lines "$W/smi-a")" = 2 ]; echo $?)"
check "nvidia-smi in b lists $b1 only" "$(has "$W/smi-b" $b1 && [ "$(lines "$W/smi-b")" = 1 ]; echo $?)"
check "nvidia-smi in a shows 8192 MiB total, 1536 used" "$(has "$W/mem-a" 8192 1536; echo $?)"
# SIGKILL: a namespace's init ignores the signals it has no handler for.
# (Only these: a bare wait would also wait for the log's tee.)
for c in a b; do kill -KILL "$(ns $c)" 2>/dev/null; done
wait "$(cat "$W/a.unshare")" "$(cat "$W/b.unshare")" 2>/dev/null
rm -rf "$ROOT" "$W"
echo "== $(date -u +%FT%TZ) done: $fails failed check(s)"
exit $((fails != 0))
