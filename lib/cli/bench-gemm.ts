// score-rl bench gemm: our sgemm at the model's shapes, in the three forms of a linear
// layer (nt forward, nn d-input, tn d-weight) and the decode shapes, each checked against
// a double-precision reference, side by side with torch.mm (OpenBLAS, forced AVX-512
// kernels) on the same shapes and threads. GFLOP/s = 2 M N K / median time.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { addon, packageRoot } from '../native/addon.js';

/** The peer's best settings (bench/README.md): passive OpenMP waiting, its thread count, and
 * OpenBLAS's AVX-512 kernels where the CPU has AVX-512 (its own detection, or an
 * OPENBLAS_CORETYPE=Haswell left in the environment, runs it 3-7x slower here). */
export function peerEnv(threads: number): NodeJS.ProcessEnv {
  let avx512 = false;
  try {
    avx512 = /\bavx512f\b/.test(readFileSync('/proc/cpuinfo', 'utf8'));
  } catch {
    /* not Linux: leave OpenBLAS to its detection */
  }
  const coretype = process.env.SCORE_PEER_CORETYPE ?? (avx512 ? 'SkylakeX' : process.env.OPENBLAS_CORETYPE);
  // GOMP_SPINCOUNT (which score-rl sets for itself) would override the peer's passive wait.
  const { GOMP_SPINCOUNT: _ours, ...env } = process.env;
  return { ...env, OMP_WAIT_POLICY: 'PASSIVE', OMP_NUM_THREADS: String(threads), ...(coretype ? { OPENBLAS_CORETYPE: coretype } : {}) };
}

export interface GemmShape {
  M: number;
  N: number;
  K: number;
  form: 'nn' | 'nt' | 'tn';
  what: string;
}

/** The products of a training step at M = B*T = 2048 (d 384 / 768 MLPs, the gpt2 lm_head) and of a decode step. */
export function gemmShapes(): GemmShape[] {
  const shapes: GemmShape[] = [];
  for (const [K, N, name] of [[384, 1536, 'small fc'], [768, 3072, 'gpt2 fc'], [768, 50304, 'gpt2 lm_head']] as const) {
    shapes.push({ M: 2048, N, K, form: 'nt', what: `${name} forward` });
    shapes.push({ M: 2048, N: K, K: N, form: 'nn', what: `${name} d-input` });
    shapes.push({ M: N, N: K, K: 2048, form: 'tn', what: `${name} d-weight` });
  }
  for (const M of [4, 8, 16]) shapes.push({ M, N: 1536, K: 384, form: 'nt', what: `decode M=${M}` });
  return shapes;
}

export interface GemmRow extends GemmShape {
  ms: number;
  min_ms: number;
  max_ms: number;
  gflops: number;
  max_rel_err: number;
  torch_ms?: number;
  torch_gflops?: number;
  ratio?: number;
}

export async function benchGemm(o: { reps: number; warmup: number; torch: boolean; python: string }): Promise<{ rows: GemmRow[]; threads: number; peer: string }> {
  const shapes = gemmShapes();
  const threads = Number(process.env.OMP_NUM_THREADS) || os.availableParallelism();
  const rows: GemmRow[] = [];
  for (const s of shapes) {
    const r = await addon().benchGemm({ M: s.M, N: s.N, K: s.K, form: s.form, reps: o.reps, warmup: o.warmup });
    const sorted = [...r.ms].sort((a, b) => a - b);
    const ms = sorted[Math.floor(sorted.length / 2)]!;
    rows.push({ ...s, ms, min_ms: sorted[0]!, max_ms: sorted[sorted.length - 1]!, gflops: (2 * s.M * s.N * s.K) / (ms * 1e6), max_rel_err: r.maxRelErr });
  }
  let peer = 'not run';
  if (o.torch) {
    if (!existsSync(o.python)) peer = `not run: ${o.python} not found`;
    else {
      const env = peerEnv(threads);
      const p = spawnSync(o.python, [path.join(packageRoot, 'bench', 'torch_gemm.py'), JSON.stringify(shapes), String(o.reps), String(o.warmup), String(threads)], { env, encoding: 'utf8', maxBuffer: 1 << 20 });
      if (p.status !== 0) peer = `not run: ${(p.stderr || p.error?.message || 'failed').trim().split('\n').pop()}`;
      else {
        const j = JSON.parse(p.stdout.trim().split('\n').pop()!) as { torch: string; threads: number; results: { median_ms: number }[] };
        peer = `PyTorch ${j.torch} torch.mm (OpenBLAS, OPENBLAS_CORETYPE=${env.OPENBLAS_CORETYPE}), ${j.threads} threads`;
        j.results.forEach((t, i) => {
          const row = rows[i]!;
          row.torch_ms = t.median_ms;
          row.torch_gflops = (2 * row.M * row.N * row.K) / (t.median_ms * 1e6);
          row.ratio = row.torch_ms / row.ms;
        });
      }
    }
  }
  return { rows, threads, peer };
}

export function gemmTable(r: { rows: GemmRow[]; threads: number; peer: string }): string {
  const head = ['product', 'M x N x K', 'form', 'GFLOP/s', 'min-max ms', 'rel err', 'peer GFLOP/s', 'ratio'];
  const body = r.rows.map((x) => [
    x.what, `${x.M} x ${x.N} x ${x.K}`, x.form, x.gflops.toFixed(0), `${x.min_ms.toFixed(2)}-${x.max_ms.toFixed(2)}`, x.max_rel_err.toExponential(1),
    x.torch_gflops === undefined ? '-' : x.torch_gflops.toFixed(0), x.ratio === undefined ? '-' : `${x.ratio.toFixed(2)}x`,
  ]);
  const all = [head, ...body];
  const w = head.map((_, j) => Math.max(...all.map((row) => row[j]!.length)));
  const lines = [`bench gemm: our sgemm, ${r.threads} threads; peer: ${r.peer}`];
  for (const row of all) lines.push(row.map((c, j) => (j === 0 ? c.padEnd(w[j]!) : c.padStart(w[j]!))).join('  '));
  return lines.join('\n');
}
