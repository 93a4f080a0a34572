#!/usr/bin/env bash
# The GPU half of the chain scheduler -> node agent -> enforcer -> process.
# `make chain-artifacts` (no GPU needed) publishes a real card's inventory
# (test/gpu/h200-inventory.json), lets the real scheduler place a pod asking
# for 4096 MiB and 30 % of it, and has the NRI plugin write the container's
# environment and limits file to test/gpu/chain-out/. This script runs a
# process with exactly that environment and limits file under the enforcer
# and checks that the scheduler's decision is what the process gets.
#   usage: OUT=/some/dir test/gpu/chain.sh   (carry test/gpu/chain-out)
cd "$(dirname "$0")/../.."
OUT=${OUT:-/tmp/mosaic-chain}
mkdir -p "$OUT"
RES=$OUT/results.txt
: >"$RES"
exec > >(tee -a "$OUT/log") 2>&1
C=test/gpu/chain-out
[ -f "$C/limits.conf" ] && [ -f "$C/env" ] || { echo "no $C: run make chain-artifacts first"; exit 1; }
fails=0
result() { echo "RESULT $*" | tee -a "$RES"; }
check() { if [ "$2" = 0 ]; then result "PASS $1"; else result "FAIL $1"; fails=$((fails + 1)); fi; }
within() { awk -v v="$1" -v lo="$2" -v hi="$3" 'BEGIN { exit !(v >= lo && v <= hi) }'; }

echo "== $(date -u +%FT%TZ)"
nvidia-smi --query-gpu=name,driver_version,memory.total,uuid --format=csv,noheader
echo "== what the node agent wrote for the container"
cat "$C/env" "$C/limits.conf"
W=$(mktemp -d)
make -C native clean all >/dev/null || exit 1
LIB=$PWD/native/build/libmosaic-enforcer.so
nvcc -O2 -arch=sm_90 -o "$W/probe" test/gpu/probe.cu -lcuda || exit 1
UUID=$(nvidia-smi --query-gpu=uuid --format=csv,noheader -i 0 | tr -d ' ')
if grep -q "$UUID" "$C/limits.conf"; then
	result "INFO the limits file names this machine's card $UUID"
else
	result "INFO the limits file names another H200 than this machine's $UUID: the enforcer matches the card by ordinal"
fi
SH=$(mktemp -d -p /dev/shm 2>/dev/null || mktemp -d)
# The container's environment as the runtime would set it (the NVIDIA
# runtime consumes NVIDIA_VISIBLE_DEVICES; on a bare host it is inert), the
# enforcer preloaded, the limits file where the agent mounted it.
with() {
	env $(grep -v '^#' "$C/env" | xargs) LD_PRELOAD="$LIB" MOSAIC_LIMITS_FILE="$PWD/$C/limits.conf" MOSAIC_SHARED_DIR="$SH" "$@"
}
LIMIT=$((4096 << 20))

echo "== memory: the scheduler's 4096 MiB"
with python3 test/gpu/torch_check.py mem $LIMIT
check "torch: mem_get_info shows 4096 MiB, past it OOM, below it succeeds" $?
smi=$(with nvidia-smi --query-gpu=memory.total --format=csv,noheader,nounits -i 0 | tr -d ' ')
check "nvidia-smi in the container shows total $smi MiB (want 4096)" "$([ "$smi" = 4096 ]; echo $?)"

echo "== compute: the scheduler's 30 %"
k0=$("$W/probe" spin 4 | awk '/^spin/ { print $3 }')
k30=$(with "$W/probe" spin 4 | awk '/^spin/ { print $3 }')
share=$(awk -v a="$k30" -v b="$k0" 'BEGIN { printf "%.1f", 100 * a / b }')
result "compute: unlimited $k0 kernels/s, under the allocation $k30 kernels/s = $share %"
check "compute share $share % within 30 +- 5" "$(within "$share" 25 35; echo $?)"

echo "== $fails failed"
[ "$fails" = 0 ]
