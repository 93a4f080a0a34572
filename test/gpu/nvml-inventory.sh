#!/usr/bin/env bash
# The NVIDIA discovery backend on a real machine: prints the inventory that
# mosaic-inventory reads through NVML and checks it against nvidia-smi
# (count, UUID, model, memory, PCI bus, MIG mode), sysfs (NUMA node),
# PyTorch (SM count, where NVML reports one) and nvidia-smi topo -m
# (NVLink counts, PCIe switch pairs). Writes $OUT/inventory.json, $OUT/log
# and $OUT/results.txt; exits non-zero if a check failed.
#   usage: OUT=/some/dir test/gpu/nvml-inventory.sh
# Uses bin/mosaic-inventory when present (it needs cgo), else builds it.
# No set -e: every check runs and is reported.
cd "$(dirname "$0")/../.."
OUT=${OUT:-/tmp/mosaic-gpu}
mkdir -p "$OUT"
RES=$OUT/results.txt
: >"$RES"
exec > >(tee -a "$OUT/log") 2>&1
fails=0
result() { echo "RESULT $*" | tee -a "$RES"; }
check() { # name, condition (0 = pass)
	if [ "$2" = 0 ]; then result "PASS $1"; else result "FAIL $1"; fails=$((fails + 1)); fi
}

echo "== $(date -u +%FT%TZ)"
nvidia-smi --query-gpu=index,name,driver_version,memory.total,uuid --format=csv,noheader
BIN=bin/mosaic-inventory
if [ ! -x "$BIN" ]; then
	CGO_CFLAGS=-Wno-deprecated-declarations go build -o "$BIN" ./cmd/mosaic-inventory || exit 1
fi

start=$(date +%s%N)
"$BIN" --backend nvidia --pretty >"$OUT/inventory.json" 2>"$OUT/inventory.err"
rc=$?
ms=$((($(date +%s%N) - start) / 1000000))
cat "$OUT/inventory.json" "$OUT/inventory.err"
check "mosaic-inventory exits 0" "$rc"
result "INFO discovery took ${ms} ms"
[ -s "$OUT/inventory.err" ] && result "INFO stderr: $(head -c 300 "$OUT/inventory.err")"

"$BIN" --backend nvidia --library /nonexistent/libnvidia-ml.so.1 >"$OUT/nodriver.json" 2>/dev/null
check "no driver: exits 0" "$?"
grep -q '"devices":\[\]' "$OUT/nodriver.json"
check "no driver: empty inventory" "$?"

nvidia-smi --query-gpu=index,uuid,name,memory.total,pci.bus_id,mig.mode.current \
	--format=csv,noheader,nounits >"$OUT/nvidia-smi.csv"
nvidia-smi topo -m | tee "$OUT/topo.txt"
CUDA_DEVICE_ORDER=PCI_BUS_ID python3 -c '
import torch
for i in range(torch.cuda.device_count()):
    print(torch.cuda.get_device_properties(i).multi_processor_count)' >"$OUT/sms.txt" 2>/dev/null || : >"$OUT/sms.txt"

# One line per check, "PASS|FAIL|INFO name", compared in Python.
python3 - "$OUT" <<'PY' >"$OUT/checks.txt"
import json, os, re, sys
out = sys.argv[1]
devs = json.load(open(f"{out}/inventory.json"))["devices"]
smi = [[f.strip() for f in l.split(",")] for l in open(f"{out}/nvidia-smi.csv") if l.strip()]
sms = [int(l) for l in open(f"{out}/sms.txt") if l.strip()]
def say(ok, name): print(("PASS " if ok else "FAIL ") + name)
def bus(s):
    d, b, f = s.lower().split(":")
    return "%04x:%s:%s" % (int(d, 16), b, f)
say(len(devs) == len(smi), f"card count: inventory {len(devs)}, nvidia-smi {len(smi)}")
uuids = {d["uuid"]: d["index"] for d in devs}
for d, (idx, uuid, name, mem, pci, mig) in zip(devs, smi):
    i = d["index"]
    say(str(i) == idx and d["uuid"] == uuid, f"GPU {i} uuid {d['uuid']} (nvidia-smi {uuid})")
    say(d["model"] == name, f"GPU {i} model {d['model']!r} (nvidia-smi {name!r})")
    say(abs(d["memoryMiB"] - int(mem)) <= int(mem) // 100, f"GPU {i} memory {d['memoryMiB']} MiB (nvidia-smi {mem})")
    say(d.get("pciBus") == bus(pci), f"GPU {i} PCI bus {d.get('pciBus')} (nvidia-smi {pci})")
    say(d.get("mig", False) == (mig == "Enabled"), f"GPU {i} MIG {d.get('mig', False)} (nvidia-smi {mig})")
    try:
        numa = int(open(f"/sys/bus/pci/devices/{bus(pci)}/numa_node").read())
    except OSError:
        numa = -1
    say(d["numa"] == max(numa, -1), f"GPU {i} NUMA {d['numa']} (sysfs {numa})")
    say(d["healthy"], f"GPU {i} healthy")
    cu = d.get("computeUnits", 0)
    if cu == 0:
        print(f"INFO GPU {i} SM count not reported by NVML")
    elif i < len(sms):
        say(cu == sms[i], f"GPU {i} SMs {cu} (PyTorch {sms[i]})")
    for l in d.get("links", []):
        say(l["peer"] in uuids, f"GPU {i} link to {l['peer']} names a GPU of this node")
# nvidia-smi topo -m: "GPU0  X  NV18 ..." rows; NV<n> is n NVLinks,
# PIX/PXB a PCIe switch between the two cards.
topo = {}
for line in open(f"{out}/topo.txt"):
    line = re.sub(r"\x1b\[[0-9;]*m", "", line)
    f = line.split()
    if f and not line[0].isspace() and re.fullmatch(r"GPU\d+", f[0]):
        topo[int(f[0][3:])] = f[1:1 + len(devs)]
for d in devs:
    i = d["index"]
    got = {uuids[l["peer"]]: (l["type"], l.get("count", 0)) for l in d.get("links", []) if l["peer"] in uuids}
    for j, v in enumerate(topo.get(i, [])):
        if j == i:
            continue
        if v.startswith("NV"):
            want = ("nvlink", int(v[2:]))
        elif v in ("PIX", "PXB"):
            want = ("pcie", 1)
        else:
            want = None
        say(got.get(j) == want, f"GPU {i} -> GPU {j}: topo {v}, inventory {got.get(j)}")
PY
py=$?
check "comparison script ran" "$py"
while read -r verdict rest; do
	case $verdict in
	PASS) result "PASS $rest" ;;
	FAIL) result "FAIL $rest"; fails=$((fails + 1)) ;;
	*) result "INFO $rest" ;;
	esac
done <"$OUT/checks.txt"

echo "== $fails failed"
[ "$fails" = 0 ]
