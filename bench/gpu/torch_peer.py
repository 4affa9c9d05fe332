"""PyTorch peer of bench/gpu/bench_cuda.cpp, on the same card and shapes.

Prints "RESULT torch_<key> <value>" lines:
  - torch.matmul bf16 (cuBLAS) TFLOP/s at the gpt2 preset's shapes (same layouts as
    ours: (M,K) @ (K,N) with the weight transposed where a linear layer reads it so);
  - a gpt2 (124M) training step in bf16 autocast with scaled_dot_product_attention and
    fused AdamW: tokens/s and MFU with the same flop count as bench_cuda;
  - greedy generation with a preallocated KV cache in bf16 at batch 64 and 256, the
    same prompt and new-token lengths (a minimal GPT-2 loop written here: no HF).
Usage: torch_peer.py [train_batch=8] [prompt=64] [new_tokens=128]
"""
import math
import sys
import time

import torch
import torch.nn.functional as F

B_TRAIN = int(sys.argv[1]) if len(sys.argv) > 1 else 8
PROMPT = int(sys.argv[2]) if len(sys.argv) > 2 else 64
NEW = int(sys.argv[3]) if len(sys.argv) > 3 else 128
V, L, C, H, T = 50257, 12, 768, 12, 1024
dev = "cuda"
torch.backends.cuda.matmul.allow_tf32 = True


def result(key, value):
    print(f"RESULT torch_{key} {value}", flush=True)


def peak(name):
    if any(s in name for s in ("H100", "H200", "H800")):
        return 756e12 if "PCIe" in name else 989e12
    if "A100" in name or "A800" in name:
        return 312e12
    return 0.0


def bench_gemm():
    Tn = 8192
    shapes = [
        ("fwd_qkv_8192x2304x768", Tn, 2304, 768, False),
        ("fwd_fc_8192x3072x768", Tn, 3072, 768, False),
        ("fwd_proj_8192x768x3072", Tn, 768, 3072, False),
        ("fwd_lmhead_1335x50257x768", 1335, 50257, 768, False),
        ("bwd_dinp_8192x768x3072", Tn, 768, 3072, True),
        ("bwd_dw_3072x768x8192", 3072, 768, Tn, True),
        ("bwd_dw_768x768x8192", 768, 768, Tn, True),
    ]
    for name, M, N, K, _ in shapes:
        a = torch.randn(M, K, device=dev, dtype=torch.bfloat16)
        w = torch.randn(N, K, device=dev, dtype=torch.bfloat16)
        b = w.t() if name.startswith("fwd") else torch.randn(K, N, device=dev, dtype=torch.bfloat16)
        torch.matmul(a, b)
        torch.cuda.synchronize()
        it = 20
        t0 = time.perf_counter()
        for _ in range(it):
            torch.matmul(a, b)
        torch.cuda.synchronize()
        dt = time.perf_counter() - t0
        result(f"gemm_{name}_tflops", f"{2 * M * N * K * it / dt / 1e12:.1f}")


class Block(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.ln1 = torch.nn.LayerNorm(C)
        self.qkv = torch.nn.Linear(C, 3 * C)
        self.o = torch.nn.Linear(C, C)
        self.ln2 = torch.nn.LayerNorm(C)
        self.fc = torch.nn.Linear(C, 4 * C)
        self.proj = torch.nn.Linear(4 * C, C)

    def attn(self, x, cache=None, pos=None):
        Bq, Tq, _ = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)
        q, k, v = (t.view(Bq, Tq, H, C // H).transpose(1, 2) for t in (q, k, v))
        if cache is None:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            kc, vc = cache
            kc[:, :, pos:pos + Tq] = k
            vc[:, :, pos:pos + Tq] = v
            kk, vv = kc[:, :, :pos + Tq], vc[:, :, :pos + Tq]
            y = F.scaled_dot_product_attention(q, kk, vv, is_causal=Tq > 1)
        return self.o(y.transpose(1, 2).reshape(Bq, Tq, C))

    def forward(self, x, cache=None, pos=None):
        x = x + self.attn(self.ln1(x), cache, pos)
        return x + self.proj(F.gelu(self.fc(self.ln2(x)), approximate="tanh"))


class GPT(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.wte = torch.nn.Embedding(V, C)
        self.wpe = torch.nn.Embedding(T, C)
        self.h = torch.nn.ModuleList(Block() for _ in range(L))
        self.lnf = torch.nn.LayerNorm(C)
        for p in self.parameters():
            if p.dim() == 2:
                torch.nn.init.normal_(p, std=0.02)

    def forward(self, idx, caches=None, pos=0):
        t = idx.shape[1]
        x = self.wte(idx) + self.wpe(torch.arange(pos, pos + t, device=idx.device))
        for i, blk in enumerate(self.h):
            x = blk(x, None if caches is None else caches[i], pos)
        return F.linear(self.lnf(x), self.wte.weight)


def bench_train(name):
    torch.manual_seed(0)
    model = GPT().to(dev)
    n_params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.1, fused=True)
    x = torch.randint(0, V, (B_TRAIN, T), device=dev)

    def step():
        with torch.autocast("cuda", dtype=torch.bfloat16):
            logits = model(x[:, :-1])
            loss = F.cross_entropy(logits.float().view(-1, V), x[:, 1:].reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    step()
    torch.cuda.synchronize()
    steps = 6
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    torch.cuda.synchronize()
    dt = (time.perf_counter() - t0) / steps
    tok_s = B_TRAIN * T / dt
    fpt = 6 * n_params + 12 * L * T * C
    result("train_step_ms", f"{dt * 1e3:.1f}")
    result("train_tokens_per_s", f"{tok_s:.0f}")
    pk = peak(name)
    result("train_mfu_percent", f"{100 * fpt * tok_s / pk:.1f}" if pk else "0")

    @torch.no_grad()
    def logprobs():
        with torch.autocast("cuda", dtype=torch.bfloat16):
            logits = model(x[:, :-1])
        lp = torch.log_softmax(logits.float(), -1)
        return lp.gather(-1, x[:, 1:, None]), -(lp.exp() * lp).sum(-1)

    logprobs()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(3):
        logprobs()
    torch.cuda.synchronize()
    result("logprobs_ms", f"{(time.perf_counter() - t0) / 3 * 1e3:.1f}")
    del model, opt
    torch.cuda.empty_cache()


@torch.no_grad()
def bench_generate(S):
    torch.manual_seed(1)
    model = GPT().to(dev).to(torch.bfloat16).eval()
    prompt = torch.randint(0, V, (S, PROMPT), device=dev)
    total = PROMPT + NEW
    caches = [(torch.empty(S, H, total, C // H, device=dev, dtype=torch.bfloat16),
               torch.empty(S, H, total, C // H, device=dev, dtype=torch.bfloat16)) for _ in range(L)]

    def run(new):
        logits = model(prompt, caches, 0)[:, -1]
        tok = logits.argmax(-1, keepdim=True)
        out = [tok]
        for i in range(new - 1):
            logits = model(tok, caches, PROMPT + i)[:, -1]
            tok = logits.argmax(-1, keepdim=True)
            out.append(tok)
        return torch.cat(out, 1)

    # The KV length changes every step; keep SDPA off the cuDNN backend, which builds a
    # new graph per shape (flash / memory-efficient kernels take any length).
    try:
        from torch.nn.attention import SDPBackend, sdpa_kernel
        ctx = sdpa_kernel([SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH])
    except ImportError:
        import contextlib
        ctx = contextlib.nullcontext()
    with ctx:
        run(2)
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        toks = run(NEW)
        torch.cuda.synchronize()
        dt = time.perf_counter() - t0
    result(f"gen_b{S}_tokens_per_s", f"{toks.numel() / dt:.0f}")
    del model, caches
    torch.cuda.empty_cache()


def main():
    name = torch.cuda.get_device_name(0)
    print(f"torch {torch.__version__} on {name}", flush=True)
    bench_gemm()
    bench_train(name)
    for S in (64, 256):
        bench_generate(S)


if __name__ == "__main__":
    main()
