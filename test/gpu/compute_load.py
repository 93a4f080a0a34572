"""Workloads for test/gpu/compute.py, one per process (the enforcer reads its
limits when the process starts).

    python3 compute_load.py MODE SECONDS

MODE: matmul (bf16 8192^2), small (~20 us elementwise kernels), graph (a
replayed torch.cuda.graph of 20 matmuls), train (8 x Linear 2048 + GELU,
AdamW, bf16), streams (4 host threads, one stream each), long (one bf16
matmul of >= 20 ms per step), capture (captures a graph, replays it; fails
loudly if the capture is invalidated).

Prints one JSON line: the step end times (CLOCK_MONOTONIC seconds), the
work each step does (in units comparable across runs of one mode) and the
per-step times. TEST_START_AT (CLOCK_MONOTONIC seconds) delays the first
step, so that several processes start measured work together;
TEST_PAUSE="at seconds" idles once.
"""
import json
import os
import sys
import threading
import time

import torch

BF16 = torch.bfloat16


def wait_start():
    at = float(os.environ.get("TEST_START_AT", "0"))
    while time.monotonic() < at:
        time.sleep(0.001)


def run(step, seconds, sync_every=1):
    """Calls step() until seconds pass; a step ends at a synchronisation."""
    pause = os.environ.get("TEST_PAUSE")
    pause_at, pause_s = (float(x) for x in pause.split()) if pause else (-1, 0)
    wait_start()
    t0 = time.monotonic()
    ends, durs = [], []
    i = 0
    while True:
        now = time.monotonic()
        if now - t0 >= seconds:
            break
        if pause_at >= 0 and now - t0 >= pause_at:
            time.sleep(pause_s)
            pause_at = -1
        a = time.monotonic()
        for _ in range(sync_every):
            step()
        torch.cuda.synchronize()
        b = time.monotonic()
        ends.append(b)
        durs.append(b - a)
        i += 1
    return t0, ends, durs


def matmul(seconds):
    a = torch.randn(8192, 8192, device="cuda", dtype=BF16)
    b = torch.randn(8192, 8192, device="cuda", dtype=BF16)
    c = torch.empty_like(a)
    for _ in range(5):
        torch.matmul(a, b, out=c)
    torch.cuda.synchronize()
    return run(lambda: torch.matmul(a, b, out=c), seconds, sync_every=10), 10


def small(seconds):
    x = torch.ones(8 << 20, device="cuda", dtype=torch.float32)  # 32 MiB: ~15-25 us a pass

    def step():
        for _ in range(50):
            x.mul_(1.0000001)

    step()
    torch.cuda.synchronize()
    return run(step, seconds), 50


def graph(seconds):
    a = torch.randn(4096, 4096, device="cuda", dtype=BF16)
    b = torch.randn(4096, 4096, device="cuda", dtype=BF16)
    c = torch.empty_like(a)
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        for _ in range(3):
            torch.matmul(a, b, out=c)
    torch.cuda.current_stream().wait_stream(s)
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        for _ in range(20):
            torch.matmul(a, b, out=c)
    g.replay()
    torch.cuda.synchronize()
    return run(g.replay, seconds), 20


def train(seconds):
    torch.manual_seed(0)
    layers = []
    for _ in range(8):
        layers += [torch.nn.Linear(2048, 2048), torch.nn.GELU()]
    model = torch.nn.Sequential(*layers).cuda().to(BF16)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x = torch.randn(2048, 2048, device="cuda", dtype=BF16)

    def step():
        loss = model(x).float().pow(2).mean()
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    for _ in range(5):
        step()
    torch.cuda.synchronize()
    return run(step, seconds), 1


def streams(seconds):
    n = 4
    mats = [(torch.randn(4096, 4096, device="cuda", dtype=BF16), torch.randn(4096, 4096, device="cuda", dtype=BF16))
            for _ in range(n)]
    outs = [torch.empty(4096, 4096, device="cuda", dtype=BF16) for _ in range(n)]
    torch.cuda.synchronize()
    wait_start()
    t0 = time.monotonic()
    ends = [[] for _ in range(n)]
    durs = [[] for _ in range(n)]

    def worker(i):
        s = torch.cuda.Stream()
        a, b = mats[i]
        with torch.cuda.stream(s):
            while time.monotonic() - t0 < seconds:
                st = time.monotonic()
                for _ in range(10):
                    torch.matmul(a, b, out=outs[i])
                s.synchronize()
                e = time.monotonic()
                ends[i].append(e)
                durs[i].append(e - st)

    th = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in th:
        t.start()
    for t in th:
        t.join()
    steps = sorted((e, d) for i in range(n) for e, d in zip(ends[i], durs[i]))
    return (t0, [e for e, _ in steps], [d for _, d in steps]), 10


def long(seconds):
    a = torch.randn(20480, 20480, device="cuda", dtype=BF16)
    b = torch.randn(20480, 20480, device="cuda", dtype=BF16)
    c = torch.empty_like(a)
    torch.matmul(a, b, out=c)
    torch.cuda.synchronize()
    return run(lambda: torch.matmul(a, b, out=c), seconds), 1


def capture(seconds):
    """Capture must work under every policy; then the replays run as graph."""
    return graph(seconds)


MODES = {f.__name__: f for f in (matmul, small, graph, train, streams, long, capture)}

if __name__ == "__main__":
    mode, seconds = sys.argv[1], float(sys.argv[2])
    (t0, ends, durs), unit = MODES[mode](seconds)
    print(json.dumps({"mode": mode, "t0": t0, "ends": ends, "durs": durs, "unit": unit}))
