"""PyTorch peer for `score-rl bench`: the same model shapes and the same work,
timed the same way (median of --steps after --warmup), printed as one JSON line.

Run by `score-rl bench ... ` when /usr/bin/python3 has torch (Debian's
python3-torch). Its best settings on this machine are applied by the caller's
environment and here: torch.set_num_threads(N), OPENBLAS_CORETYPE=SkylakeX,
OMP_WAIT_POLICY=PASSIVE (out of the box it is 3-7x slower).

The model follows the Hugging Face semantics of each family (GPT-2: LayerNorm,
GELU-tanh, learned positions, tied lm_head; Llama/Qwen2: RMSNorm, SwiGLU,
rotary, grouped-query attention), eager mode, float32.
"""
import argparse
import json
import math
import resource
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class RMSNorm(nn.Module):
    def __init__(self, c, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(c))
        self.eps = eps

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


class Block(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        C, H, KVH, Fd = cfg["C"], cfg["H"], cfg["KVH"], cfg["F"]
        self.cfg = cfg
        self.hd = C // H
        gpt2 = cfg["arch"] == "gpt2"
        self.ln1 = nn.LayerNorm(C, eps=1e-5) if gpt2 else RMSNorm(C, 1e-6)
        self.ln2 = nn.LayerNorm(C, eps=1e-5) if gpt2 else RMSNorm(C, 1e-6)
        self.qkv = nn.Linear(C, (H + 2 * KVH) * self.hd, bias=gpt2 or cfg["arch"] == "qwen2")
        self.o = nn.Linear(H * self.hd, C, bias=gpt2)
        if gpt2:
            self.fc = nn.Linear(C, Fd)
            self.proj = nn.Linear(Fd, C)
        else:
            self.gate_up = nn.Linear(C, 2 * Fd, bias=False)
            self.down = nn.Linear(Fd, C, bias=False)

    def forward(self, x, cos, sin, mask, cache=None, start=0):
        B, T, C = x.shape
        H, KVH, hd = self.cfg["H"], self.cfg["KVH"], self.hd
        qkv = self.qkv(self.ln1(x))
        q, k, v = qkv.split([H * hd, KVH * hd, KVH * hd], dim=-1)
        q = q.view(B, T, H, hd).transpose(1, 2)
        k = k.view(B, T, KVH, hd).transpose(1, 2)
        v = v.view(B, T, KVH, hd).transpose(1, 2)
        if cos is not None:
            q = q * cos + rotate_half(q) * sin
            k = k * cos + rotate_half(k) * sin
        if cache is not None:  # KV cache: preallocated (B, KVH, Tmax, hd) tensors
            kc, vc = cache
            kc[:, :, start:start + T] = k
            vc[:, :, start:start + T] = v
            k, v = kc[:, :, :start + T], vc[:, :, :start + T]
        if KVH != H:
            k = k.repeat_interleave(H // KVH, dim=1)
            v = v.repeat_interleave(H // KVH, dim=1)
        att = (q @ k.transpose(-2, -1)) / math.sqrt(hd) + mask
        y = att.softmax(-1) @ v
        x = x + self.o(y.transpose(1, 2).reshape(B, T, H * hd))
        h = self.ln2(x)
        if self.cfg["arch"] == "gpt2":
            h = self.proj(F.gelu(self.fc(h), approximate="tanh"))
        else:
            g, u = self.gate_up(h).chunk(2, dim=-1)
            h = self.down(F.silu(g) * u)
        return x + h


class Model(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        C, V = cfg["C"], cfg["V"]
        self.wte = nn.Embedding(V, C)
        self.wpe = nn.Embedding(1024, C) if cfg["arch"] == "gpt2" else None
        self.blocks = nn.ModuleList([Block(cfg) for _ in range(cfg["L"])])
        self.lnf = nn.LayerNorm(C, eps=1e-5) if cfg["arch"] == "gpt2" else RMSNorm(C, 1e-6)
        self.lm_head = None if cfg["tied"] else nn.Linear(C, V, bias=False)
        for p in self.parameters():
            if p.dim() == 2:
                nn.init.normal_(p, std=0.02)

    def forward(self, tokens, caches=None, start=0):
        B, T = tokens.shape
        x = self.wte(tokens)
        cos = sin = None
        pos = torch.arange(start, start + T)
        if self.wpe is not None:
            x = x + self.wpe(pos)
        else:
            hd = self.cfg["C"] // self.cfg["H"]
            theta = 10000.0 if self.cfg["arch"] == "llama" else 1e6
            inv = 1.0 / (theta ** (torch.arange(0, hd, 2).float() / hd))
            f = torch.outer(pos.float(), inv)
            emb = torch.cat((f, f), dim=-1)
            cos, sin = emb.cos(), emb.sin()
        # causal mask over the keys 0..start+T-1 for the T new queries
        mask = torch.full((T, start + T), float("-inf")).triu(start + 1)
        for i, b in enumerate(self.blocks):
            x = b(x, cos, sin, mask, None if caches is None else caches[i], start)
        x = self.lnf(x)
        w = self.wte.weight if self.lm_head is None else self.lm_head.weight
        return x @ w.t()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--suite", choices=["train", "logprobs", "sample"], required=True)
    ap.add_argument("--prompt", type=int, default=32)
    ap.add_argument("--new", type=int, default=96)
    ap.add_argument("--arch", default="gpt2")
    ap.add_argument("--L", type=int, required=True)
    ap.add_argument("--C", type=int, required=True)
    ap.add_argument("--H", type=int, required=True)
    ap.add_argument("--V", type=int, required=True)
    ap.add_argument("--B", type=int, required=True)
    ap.add_argument("--T", type=int, required=True)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    gpt2 = a.arch == "gpt2"
    F_ = 4 * a.C if gpt2 else math.ceil(8 * a.C / 3 / 64) * 64
    cfg = dict(arch=a.arch, L=a.L, C=a.C, H=a.H, KVH=a.H if gpt2 else a.H // 2, F=F_, V=a.V,
               tied=a.arch != "llama")
    model = Model(cfg)
    tokens = torch.randint(0, a.V, (a.B, a.T))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.0)

    def train_step():
        logits = model(tokens)
        loss = F.cross_entropy(logits[:, :-1].reshape(-1, a.V), tokens[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def score_step():
        with torch.no_grad():
            logits = model(tokens)
            logp = logits[:, :-1].log_softmax(-1).gather(-1, tokens[:, 1:, None])
            return logp

    def sample_step():
        # KV-cache generation: prefill the prompts, then one token per step for the batch,
        # sampling from softmax(logits) (temperature 1), as `score-rl bench sample` does.
        with torch.no_grad():
            hd = a.C // a.H
            caches = [(torch.zeros(a.B, cfg["KVH"], a.prompt + a.new, hd),
                       torch.zeros(a.B, cfg["KVH"], a.prompt + a.new, hd)) for _ in range(a.L)]
            prompt = tokens[:, :a.prompt]
            logits = model(prompt, caches, 0)[:, -1]
            for t in range(a.new):
                nxt = torch.multinomial(logits.softmax(-1), 1)
                if t + 1 == a.new:
                    break
                logits = model(nxt, caches, a.prompt + t)[:, -1]

    step = {"train": train_step, "logprobs": score_step, "sample": sample_step}[a.suite]
    for _ in range(a.warmup):
        step()
    times = []
    for _ in range(a.steps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    print(json.dumps({
        "median_ms": med * 1e3,
        "min_ms": min(times) * 1e3,
        "max_ms": max(times) * 1e3,
        "tokens_per_s": (a.B * a.new if a.suite == "sample" else a.B * a.T) / med,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }))


if __name__ == "__main__":
    main()
