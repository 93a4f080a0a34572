"""PyTorch checks for test/gpu/enforcer.sh.

mem LIMIT   mem_get_info shows the limit; past it raises OOM, below succeeds
step N      median training-step time (ms) over N steps of a small MLP
"""
import statistics
import sys
import time

import torch


def mem(limit):
    free, total = torch.cuda.mem_get_info()
    print(f"mem_get_info free {free} total {total}")
    ok = total == limit
    gib = 1 << 30
    try:
        torch.empty(limit + gib, dtype=torch.uint8, device="cuda")
        print("FAIL: allocation past the limit succeeded")
        ok = False
    except torch.OutOfMemoryError as e:
        print("past the limit: OutOfMemoryError:", str(e).splitlines()[0][:160])
    x = torch.empty(limit - gib, dtype=torch.uint8, device="cuda")
    x.fill_(1)
    torch.cuda.synchronize()
    print("below the limit: allocated", x.numel())
    del x
    torch.cuda.empty_cache()
    print("torch mem:", "passed" if ok else "FAILED")
    return 0 if ok else 1


def step(n):
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        *[m for _ in range(8) for m in (torch.nn.Linear(4096, 4096), torch.nn.GELU())]
    ).cuda().to(torch.bfloat16)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x = torch.randn(4096, 4096, device="cuda", dtype=torch.bfloat16)
    times = []
    for i in range(n + 20):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        loss = model(x).float().pow(2).mean()
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        torch.cuda.synchronize()
        if i >= 20:
            times.append((time.perf_counter() - t0) * 1e3)
    print(f"step median_ms {statistics.median(times):.3f} n {n} loss {loss.item():.4f}")
    return 0


if __name__ == "__main__":
    mode = sys.argv[1]
    sys.exit(mem(int(sys.argv[2])) if mode == "mem" else step(int(sys.argv[2])))
