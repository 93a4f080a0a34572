"""The compute limit on a real card: each target of docs/enforcer.md, one
RESULT line each. Run by test/gpu/compute.sh (which builds the enforcer).

    python3 compute.py LIB OUTDIR single|shared|overhead [SECONDS]

Time is measured as the card's busy time (NVML device utilization, sampled
every 20 ms, averaged over the run after its first second) and throughput
beside it, against the same workload without the enforcer. Containers are
what production makes them: a limits file, an accounting directory of their
own, and one card region shared by all (the node agent's mount).
"""
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import pynvml

HERE = os.path.dirname(os.path.abspath(__file__))
LOAD = os.path.join(HERE, "compute_load.py")
LIB, OUT, PART = sys.argv[1], sys.argv[2], sys.argv[3]
SECONDS = float(sys.argv[4]) if len(sys.argv) > 4 else 6.0
os.makedirs(OUT, exist_ok=True)
RESULTS = open(os.path.join(OUT, f"results-{PART}.txt"), "a")
fails = 0

pynvml.nvmlInit()
GPU = pynvml.nvmlDeviceGetHandleByIndex(0)
UUID = pynvml.nvmlDeviceGetUUID(GPU)
UUID = UUID.decode() if isinstance(UUID, bytes) else UUID
ROOT = tempfile.mkdtemp(prefix="mosaic-compute-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
CARDS = os.path.join(ROOT, "cards")
os.makedirs(os.path.join(CARDS, UUID))
n_containers = 0


def result(ok, text):
    global fails
    tag = "INFO" if ok is None else ("PASS" if ok else "FAIL")
    if ok is False:
        fails += 1
    line = f"RESULT {tag} {text}"
    print(line, flush=True)
    RESULTS.write(line + "\n")
    RESULTS.flush()


class Sampler:
    """NVML device utilization (percent of time a kernel ran), every 20 ms."""

    def __init__(self):
        self.samples = []
        self.stop = False
        self.t = threading.Thread(target=self.loop, daemon=True)
        self.t.start()

    def loop(self):
        while not self.stop:
            u = pynvml.nvmlDeviceGetUtilizationRates(GPU).gpu
            self.samples.append((time.monotonic(), u, charged_ns()))
            time.sleep(0.02)

    def mean(self, a, b):
        v = [u for t, u, _ in self.samples if a <= t <= b]
        return statistics.mean(v) if v else float("nan")

    def charged(self, a, b):
        """Percent of [a, b] the enforcer charged as GPU time."""
        v = [(t, c) for t, _, c in self.samples if a <= t <= b]
        if len(v) < 2 or v[-1][0] <= v[0][0]:
            return float("nan")
        return 100 * (v[-1][1] - v[0][1]) / 1e9 / (v[-1][0] - v[0][0])

    def close(self):
        self.stop = True
        self.t.join()


def container(cores=None, policy="force"):
    """Environment of a new container holding a share of the card."""
    global n_containers
    n_containers += 1
    env = dict(os.environ)
    if cores is None:
        return env
    d = os.path.join(ROOT, f"c{n_containers}")
    os.makedirs(os.path.join(d, "shared"))
    lim = os.path.join(d, "limits.conf")
    with open(lim, "w") as f:
        f.write(f"mosaic-limits 1\npolicy {policy}\ncard 0 {UUID} memory=0 cores={cores}\n")
    env.update(LD_PRELOAD=LIB, MOSAIC_LIMITS_FILE=lim, MOSAIC_SHARED_DIR=os.path.join(d, "shared"),
               MOSAIC_CARD_DIR=CARDS, MOSAIC_ENFORCER_LOG="warn")
    return env


def start(mode, seconds, env, extra=None):
    env = dict(env)
    env.update(extra or {})
    return subprocess.Popen([sys.executable, LOAD, mode, str(seconds)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def finish(p):
    out, err = p.communicate()
    if p.returncode != 0:
        print(err[-3000:], file=sys.stderr)
        return None
    return json.loads(out.strip().splitlines()[-1])


def rate(r, a, b):
    """Work units per second finished in [a, b]."""
    n = sum(1 for e in r["ends"] if a <= e <= b)
    return n * r["unit"] / (b - a) if b > a else 0.0


def steady(r):
    """[t0 + 1 s, last end]: after the first second."""
    return r["t0"] + 1.0, r["ends"][-1] if r["ends"] else r["t0"] + 1.0


def step_ratio(r):
    a, _ = steady(r)
    d = sorted(x for x, e in zip(r["durs"], r["ends"]) if e >= a)
    if len(d) < 5:
        return float("nan")
    return d[int(len(d) * 0.99) if len(d) > 100 else -1] / d[len(d) // 2]


def charged_ns():
    """GPU time the enforcer charged so far, all containers of the card:
    the busy_ns of every tenant of the card region (pkg/device/cardregion.go)."""
    try:
        with open(os.path.join(CARDS, UUID, "lease"), "rb") as f:
            b = f.read(128 + 64 * 64)
    except OSError:
        return 0
    if len(b) < 128 + 64 * 64:
        return 0
    return sum(int.from_bytes(b[128 + 64 * i + 40:128 + 64 * i + 48], "little") for i in range(64))


LAST_CHARGED = [float("nan")]


def step_text(r):
    a, _ = steady(r)
    d = sorted(x for x, e in zip(r["durs"], r["ends"]) if e >= a)
    if not d:
        return "no steps"
    steps = [(x, i) for i, (x, e) in enumerate(zip(r["durs"], r["ends"])) if e >= a]
    print(f"  steps ms, first after warm-up: {' '.join(f'{1000 * x:.1f}' for x, _ in steps[:10])}; longest (index): "
          f"{' '.join(f'{1000 * x:.1f}({i})' for x, i in sorted(steps, reverse=True)[:3])}", flush=True)
    return (f"step p99/median {step_ratio(r):.2f} (median {1000 * d[len(d) // 2]:.2f} ms, max {1000 * d[-1]:.2f} ms, "
            f"{len(d)} steps)")


def solo(mode, env, seconds=SECONDS, extra=None):
    s = Sampler()
    r = finish(start(mode, seconds, env, extra))
    s.close()
    if r is None or not r["ends"]:
        return None, float("nan")
    a, b = steady(r)
    LAST_CHARGED[0] = s.charged(a, b)
    return r, s.mean(a, b)


MODES = os.environ.get("MODES", "matmul small graph train streams long").split()
ROUNDS = int(os.environ.get("ROUNDS", "3"))


def part_single():
    base = {}
    for m in MODES:
        r, busy = solo(m, container())
        if r is None:
            result(False, f"{m}: the workload failed without the enforcer")
            continue
        a, b = steady(r)
        base[m] = (rate(r, a, b), busy)
        result(None, f"native {m}: {base[m][0]:.1f} units/s, card busy {busy:.1f} %, {step_text(r)}")
    for m in MODES:
        if m not in base:
            continue
        limits = [10, 25, 50, 75, 90]
        if os.environ.get("LIMITS"):
            limits = [int(x) for x in os.environ["LIMITS"].split()]
        for lim in limits:
            r, busy = solo(m, container(lim, "force"))
            if r is None:
                result(False, f"{m} force {lim}: the workload failed under the enforcer")
                continue
            a, b = steady(r)
            thr = 100 * rate(r, a, b) / base[m][0]
            want = min(lim, base[m][1])  # a host-bound loop cannot use more than it does alone
            ratio = step_ratio(r)
            ok = abs(busy - want) <= 3 and ratio <= 1.5
            result(ok, f"{m} force {lim}: card busy {busy:.1f} % (want {want:.1f} +- 3), throughput {thr:.1f} % "
                       f"of native, enforcer charged {LAST_CHARGED[0]:.1f} %, {step_text(r)}")


def together(specs, mode="matmul", seconds=SECONDS):
    """specs: [(cores, policy)]; None cores = no enforcer. Returns results."""
    at = time.monotonic() + 6.0
    ps = [start(mode, seconds, container(c, p), {"TEST_START_AT": f"{at:.3f}"}) for c, p in specs]
    s = Sampler()
    rs = [finish(p) for p in ps]
    s.close()
    return rs, s, at


def part_shared():
    m = "matmul"
    # Natively time-sliced: the same processes without the enforcer.
    native = {}
    for n in (2, 3):
        rs, s, at = together([(None, None)] * n)
        a, b = at + 1, at + SECONDS
        native[n] = sum(rate(r, a, b) for r in rs)
        result(None, f"native {n} processes time-sliced: total {native[n]:.1f} matmul/s, each "
                     + " ".join(f"{rate(r, a, b):.1f}" for r in rs) + f", card busy {s.mean(a, b):.1f} %")
    for shares in ([50, 50], [30, 70], [20, 30, 50]):
        for policy in ("force", "default"):
            rs, s, at = together([(c, policy) for c in shares])
            if any(r is None for r in rs):
                result(False, f"{policy} {shares}: a workload failed")
                continue
            a, b = at + 1, at + SECONDS
            rates = [rate(r, a, b) for r in rs]
            total = sum(rates)
            fr = [100 * x / total for x in rates]
            want = [100 * c / sum(shares) for c in shares]
            ok = all(abs(f - w) <= 5 for f, w in zip(fr, want)) and total >= 0.9 * native[len(shares)]
            result(ok, f"{policy} {shares} at once: fractions of the card's throughput "
                       + " ".join(f"{f:.1f}" for f in fr) + " (want " + " ".join(f"{w:.1f}" for w in want)
                       + f" +- 5), total {100 * total / native[len(shares)]:.1f} % of natively time-sliced"
                       + f", card busy {s.mean(a, b):.1f} %")
    # default lends and takes back: A (30) alone, B (70) joins for 4 s, leaves.
    solo_r, _ = solo(m, container())
    solo_rate = rate(solo_r, *steady(solo_r))
    at = time.monotonic() + 6.0
    pa = start(m, 14, container(30, "default"), {"TEST_START_AT": f"{at:.3f}"})
    pb = start(m, 4, container(70, "default"), {"TEST_START_AT": f"{at + 5:.3f}"})
    ra, rb = finish(pa), finish(pb)
    if ra is None or rb is None:
        result(False, "default lends: a workload failed")
    else:
        a1 = 100 * rate(ra, at + 1, at + 5) / solo_rate
        a2 = 100 * rate(ra, at + 5.1, at + 9) / solo_rate
        b2 = 100 * rate(rb, at + 5.1, at + 9) / solo_rate
        a3 = 100 * rate(ra, at + 9.2, at + 14) / solo_rate
        # The hand-over: A's and B's throughput in the 100 ms windows after B starts.
        first = []
        for k in range(10):
            w0 = at + 5 + 0.1 * k
            first.append((100 * rate(ra, w0, w0 + 0.1) / solo_rate, 100 * rate(rb, w0, w0 + 0.1) / solo_rate))
        ok = a1 >= 90 and abs(a2 - 30) <= 8 and abs(b2 - 70) <= 8 and a3 >= 90
        result(ok, f"default 30 alone {a1:.1f} % of solo; beside default 70 from 100 ms on: {a2:.1f} % (B {b2:.1f} %); "
                   f"alone again {a3:.1f} %; 100 ms windows after B starts (A/B): "
                   + " ".join(f"{x:.0f}/{y:.0f}" for x, y in first))
    # Idle, then busy: at its share at once.
    r, _ = solo(m, container(30, "force"), seconds=66, extra={"TEST_PAUSE": "3 60"})
    if r is not None:
        resume = r["t0"] + 63
        first_s = 100 * rate(r, resume, resume + 1) / solo_rate
        gaps = [d for d, e in zip(r["durs"], r["ends"]) if e > resume]
        ok = abs(first_s - 30) <= 8 and (max(gaps[:5]) if gaps else 9) < 0.5
        result(ok, f"force 30 after 60 s idle: first second {first_s:.1f} % of solo throughput, first steps "
                   + " ".join(f"{1000 * d:.0f}" for d in gaps[:5]) + " ms")
    # Capture and replay under every policy.
    for policy in ("force", "default", "disable"):
        r, busy = solo("capture", container(30, policy), seconds=3)
        result(r is not None and len(r["ends"]) > 0,
               f"torch.cuda.graph capture and replay under {policy} 30: "
               + ("ok, card busy %.1f %%" % busy if r else "FAILED"))


def part_overhead(probe):
    def launch(env):
        out = subprocess.run([probe, "launch", "200000"], env=env, capture_output=True, text=True).stdout
        kv = out.split()
        return float(kv[kv.index("median_ns") + 1])

    rows = {"native": [], "memory limit only": [], "cores 99, lease held": []}
    for _ in range(5):
        rows["native"].append(launch(container()))
        e = container(0, "default")
        with open(e["MOSAIC_LIMITS_FILE"], "w") as f:
            f.write(f"mosaic-limits 1\npolicy default\ncard 0 {UUID} memory={120 << 30} cores=0\n")
        rows["memory limit only"].append(launch(e))
        rows["cores 99, lease held"].append(launch(container(99, "default")))
    med = {k: statistics.median(v) for k, v in rows.items()}
    d_mem = med["memory limit only"] - med["native"]
    d_lease = med["cores 99, lease held"] - med["native"]
    result(None, "launch median ns: " + ", ".join(f"{k} {v:.0f}" for k, v in med.items()))
    result(d_mem < 100, f"launch overhead, no compute limit on the card: {d_mem:+.0f} ns (want < +100)")
    result(d_lease < 500, f"launch overhead, own lease held: {d_lease:+.0f} ns (want < +500)")
    steps = {"native": [], "cores 0": [], "cores 100": []}
    for _ in range(ROUNDS):
        for k, env in (("native", container()), ("cores 0", container(0, "default")),
                       ("cores 100", container(100, "default"))):
            r, _ = solo("train", env, seconds=4)
            if r:
                a, _ = steady(r)
                steps[k].append(statistics.median(d for d, e in zip(r["durs"], r["ends"]) if e >= a))
    med = {k: 1000 * statistics.median(v) for k, v in steps.items() if v}
    result(None, f"training step median ms ({ROUNDS} alternating rounds): " + ", ".join(f"{k} {v:.3f}" for k, v in med.items()))


if __name__ == "__main__":
    if PART == "single":
        part_single()
    elif PART == "shared":
        part_shared()
    elif PART == "overhead":
        part_overhead(sys.argv[5])
    print(f"compute {PART}: {fails} failed", flush=True)
    sys.exit(1 if fails else 0)
