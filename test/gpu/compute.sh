#!/usr/bin/env bash
# The compute limit on a real card (docs/enforcer.md, "Targets"): builds
# libmosaic-enforcer and the launch probe, then runs test/gpu/compute.py's
# parts and writes $OUT/results-<part>.txt, one RESULT line per target.
#   usage: OUT=/some/dir test/gpu/compute.sh [single] [shared] [overhead]
cd "$(dirname "$0")/../.."
OUT=${OUT:-/tmp/mosaic-gpu}
mkdir -p "$OUT"
exec > >(tee -a "$OUT/compute.log") 2>&1
echo "== $(date -u +%FT%TZ)"
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv,noheader
python3 -c 'import torch; print("torch", torch.__version__)'
make -s -C native clean all || exit 1
LIB=$PWD/native/build/libmosaic-enforcer.so
W=$(mktemp -d)
nvcc -O2 -arch=sm_90 -o "$W/probe" test/gpu/probe.cu -lcuda || exit 1
[ -e /run/mosaic/limits.conf ] && echo "WARNING: /run/mosaic/limits.conf exists and wins over MOSAIC_LIMITS_FILE"
rc=0
for part in "${@:-single shared overhead}"; do
	for p in $part; do
		PYTHONUNBUFFERED=1 python3 test/gpu/compute.py "$LIB" "$OUT" "$p" "${SECONDS_PER_RUN:-6}" "$W/probe" || rc=1
	done
done
exit $rc
