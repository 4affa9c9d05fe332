"""The GEMM peer of `score-rl bench gemm`: torch.mm (Debian's torch calls OpenBLAS) on the
same shapes, layouts and thread count as our sgemm. argv[1]: JSON list of
{"M", "N", "K", "form"} (nt: B stored (N, K); tn: A stored (K, M)), argv[2]: reps,
argv[3]: warmup, argv[4]: threads. Prints one JSON list of {"median_ms", "min_ms", "max_ms"}."""
import json
import statistics
import sys
import time

import torch


def main():
    shapes, reps, warmup, threads = json.loads(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    out = []
    for s in shapes:
        M, N, K, form = s["M"], s["N"], s["K"], s["form"]
        a = torch.rand(K, M) * 2 - 1 if form == "tn" else torch.rand(M, K) * 2 - 1
        b = torch.rand(N, K) * 2 - 1 if form == "nt" else torch.rand(K, N) * 2 - 1
        c = torch.empty(M, N)
        left = a.t() if form == "tn" else a
        right = b.t() if form == "nt" else b
        for _ in range(warmup):
            torch.mm(left, right, out=c)
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            torch.mm(left, right, out=c)
            times.append((time.perf_counter() - t0) * 1e3)
        out.append({"median_ms": statistics.median(times), "min_ms": min(times), "max_ms": max(times)})
    print(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads(), "results": out}))


if __name__ == "__main__":
    main()
