// score-rl bench train|logprobs|sample|gemm --preset P [--arch A] [--json] [--no-torch]
// Our number, and PyTorch's on the same shapes and threads when /usr/bin/python3
// has torch, side by side in one run, with the ratio.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Bench } from 'tinybench';
import { initModel, type Model } from '../model/model.js';
import { packageRoot, type MemoryUse } from '../native/addon.js';
import { ARCHS, getPreset, PRESETS, type Arch } from '../model/presets.js';
import { CliError, helpText, parseArgs, type FlagSpec } from './args.js';
import { benchGemm, gemmTable, peerEnv } from './bench-gemm.js';

const MB = 1024 * 1024;

const SUITES = ['train', 'logprobs', 'sample'] as const;
type Suite = (typeof SUITES)[number];

const SPEC: FlagSpec = {
  preset: { type: 'string', help: `model size: ${Object.keys(PRESETS).join(' | ')}`, default: 'small' },
  arch: { type: 'string', help: `architecture: ${ARCHS.join(' | ')}`, default: 'gpt2' },
  steps: { type: 'number', help: 'timed steps (median reported)', default: 10 },
  warmup: { type: 'number', help: 'untimed warm-up steps', default: 2 },
  batch: { type: 'number', help: 'batch size B (default: the preset\'s)' },
  seq: { type: 'number', help: 'sequence length T (default: the preset\'s)' },
  'no-torch': { type: 'boolean', help: 'skip the PyTorch peer' },
  python: { type: 'string', help: 'python with torch for the peer', default: '/usr/bin/python3' },
  json: { type: 'boolean', help: 'print one JSON object' },
  help: { type: 'boolean', help: 'show this help' },
};

export interface BenchResult {
  suite: Suite;
  preset: string;
  arch: Arch;
  backend: string;
  B: number;
  T: number;
  tokens_per_s: number;
  median_ms: number;
  min_ms: number;
  max_ms: number;
  peak_rss_mb: number;
  threads: number;
  torch?: { tokens_per_s: number; median_ms: number; min_ms: number; max_ms: number; peak_rss_mb: number; version: string; threads: number } | { error: string };
  ratio_vs_torch?: number;
  /** train: what the model holds after the steps, and how far the process grew past it */
  memory?: MemoryReport;
}

export interface MemoryReport {
  held: MemoryUse;
  held_mb: number;
  /** peak RSS during the run minus RSS before the model existed */
  rss_growth_mb: number;
  /** rss_growth_mb / held_mb: what the held buffers do not explain (allocator, per-call buffers) */
  ratio: number;
}

function randomBatch(B: number, T: number, V: number): number[][] {
  let s = 12345;
  const next = () => ((s = (s * 1103515245 + 12345) >>> 0), s % V);
  return Array.from({ length: B }, () => Array.from({ length: T }, next));
}

async function timeIt(fn: () => Promise<unknown>, steps: number, warmup: number) {
  const bench = new Bench({ iterations: steps, warmupIterations: warmup, time: 0, warmupTime: 0 });
  bench.add('step', fn);
  await bench.run();
  const r = bench.tasks[0]!.result;
  if (r.state !== 'completed') throw new CliError(`benchmark failed: ${JSON.stringify((r as { error?: unknown }).error ?? r.state)}`);
  return { median: r.latency.p50, min: r.latency.min, max: r.latency.max };
}

function runTorch(python: string, suite: Suite, arch: Arch, preset: string, B: number, T: number, steps: number, warmup: number, threads: number, newTokens: number) {
  const p = getPreset(preset);
  const script = path.join(packageRoot, 'bench', 'torch_peer.py');
  // The peer's best settings on this machine (see bench/README.md).
  const env = peerEnv(threads);
  const args = [script, '--suite', suite, '--arch', arch, '--L', String(p.layers), '--C', String(p.dModel), '--H', String(p.heads), '--V', String(p.vocab), '--B', String(B), '--T', String(T), '--steps', String(steps), '--warmup', String(warmup), '--threads', String(threads), '--prompt', String(T - newTokens), '--new', String(newTokens)];
  const r = spawnSync(python, args, { env, encoding: 'utf8', maxBuffer: 1 << 20 });
  if (r.status !== 0) return { error: (r.stderr || r.error?.message || 'failed').trim().split('\n').pop()! };
  const j = JSON.parse(r.stdout.trim().split('\n').pop()!) as Record<string, number | string>;
  return { tokens_per_s: j.tokens_per_s as number, median_ms: j.median_ms as number, min_ms: j.min_ms as number, max_ms: j.max_ms as number, peak_rss_mb: j.peak_rss_mb as number, version: String(j.torch), threads: j.threads as number };
}

export async function runBench(suite: Suite, opts: { preset: string; arch: Arch; steps: number; warmup: number; B?: number; T?: number; torch: boolean; python: string }): Promise<BenchResult> {
  const p = getPreset(opts.preset);
  // sample: B prompts of p.sample.prompt tokens, p.sample.newTokens new tokens each (T = both)
  const B = opts.B ?? (suite === 'sample' ? p.sample.batch : p.batchB);
  const T = opts.T ?? (suite === 'sample' ? p.sample.prompt + p.sample.newTokens : p.seqT);
  const newTokens = suite === 'sample' ? Math.min(p.sample.newTokens, T - 1) : 0;
  const threads = Number(process.env.OMP_NUM_THREADS) || os.availableParallelism();
  const rssBefore = process.memoryUsage().rss;
  const model: Model = await initModel({ arch: opts.arch, preset: opts.preset }, { seed: 1 });
  const tokens = randomBatch(B, T, p.vocab);
  let t;
  let held: MemoryUse | undefined;
  try {
    const prompts = tokens.map((r) => r.slice(0, T - newTokens));
    let seed = 0;
    const step =
      suite === 'train'
        ? async () => {
            await model.sftStep({ tokens });
            await model.optimizerStep({ lr: 1e-4 });
          }
        : suite === 'logprobs'
          ? async () => {
              await model.logprobs(tokens);
            }
          : async () => {
              await model.generate(prompts, { temperature: 1, maxNewTokens: newTokens, eosId: null, seed: seed++ });
            };
    t = await timeIt(step, opts.steps, opts.warmup);
    if (suite === 'train') held = model.memoryUse();
  } finally {
    model.dispose();
  }
  const result: BenchResult = {
    suite, preset: opts.preset, arch: opts.arch, backend: 'cpu', B, T,
    tokens_per_s: (B * (suite === 'sample' ? newTokens : T)) / (t.median / 1e3), median_ms: t.median, min_ms: t.min, max_ms: t.max,
    peak_rss_mb: process.resourceUsage().maxRSS / 1024, threads,
  };
  if (held) {
    const heldMb = Object.values(held).reduce((a, b) => a + b, 0) / MB;
    const growth = result.peak_rss_mb - rssBefore / MB;
    result.memory = { held, held_mb: heldMb, rss_growth_mb: growth, ratio: growth / heldMb };
  }
  if (opts.torch) {
    if (!existsSync(opts.python)) result.torch = { error: `${opts.python} not found` };
    else result.torch = runTorch(opts.python, suite, opts.arch, opts.preset, B, T, opts.steps, opts.warmup, threads, newTokens);
    if ('tokens_per_s' in result.torch) result.ratio_vs_torch = result.tokens_per_s / result.torch.tokens_per_s;
  }
  return result;
}

function table(r: BenchResult): string {
  const rows = [['', 'tokens/s', 'median ms', 'min-max ms', 'peak RSS MB']];
  rows.push(['score-rl (' + r.backend + ')', r.tokens_per_s.toFixed(0), r.median_ms.toFixed(1), `${r.min_ms.toFixed(1)}-${r.max_ms.toFixed(1)}`, r.peak_rss_mb.toFixed(0)]);
  if (r.torch && 'tokens_per_s' in r.torch)
    rows.push([`PyTorch ${r.torch.version}`, r.torch.tokens_per_s.toFixed(0), r.torch.median_ms.toFixed(1), `${r.torch.min_ms.toFixed(1)}-${r.torch.max_ms.toFixed(1)}`, r.torch.peak_rss_mb.toFixed(0)]);
  const w = rows[0]!.map((_, i) => Math.max(...rows.map((row) => row[i]!.length)));
  const what = r.suite === 'sample' ? 'new tokens/s' : 'tokens/s';
  const lines = [`bench ${r.suite}: ${r.arch} preset '${r.preset}', B=${r.B} T=${r.T}, ${r.threads} threads (${what})`];
  for (const row of rows) lines.push(row.map((c, i) => (i === 0 ? c.padEnd(w[i]!) : c.padStart(w[i]!))).join('  '));
  if (r.memory) {
    const h = r.memory.held;
    const mb = (x: number) => (x / MB).toFixed(0);
    lines.push(`memory held (MB): params ${mb(h.params)} + grads ${mb(h.grads)} + AdamW ${mb(h.optimizer)} + activations kept ${mb(h.activations)} + backward scratch ${mb(h.scratch)} = ${r.memory.held_mb.toFixed(0)}`);
    lines.push(`peak RSS growth during the run: ${r.memory.rss_growth_mb.toFixed(0)} MB = ${r.memory.ratio.toFixed(2)}x the held memory (the rest: per-call buffers, allocator)`);
  }
  if (r.ratio_vs_torch !== undefined) lines.push(`ratio score-rl / PyTorch: ${r.ratio_vs_torch.toFixed(2)}x`);
  else if (r.torch && 'error' in r.torch) lines.push(`PyTorch peer not run: ${r.torch.error}`);
  return lines.join('\n');
}

export async function run(args: string[]): Promise<number> {
  const { flags, positional } = parseArgs(args, SPEC, 1);
  if (flags.help || positional.length === 0) {
    console.log(helpText(`usage: score-rl bench ${SUITES.join('|')}|gemm --preset P [--arch A] [--json]`, SPEC));
    return flags.help ? 0 : 1;
  }
  if (positional[0] === 'gemm') {
    const g = await benchGemm({ reps: Number(flags.steps), warmup: Number(flags.warmup), torch: !flags['no-torch'], python: String(flags.python) });
    console.log(flags.json ? JSON.stringify(g) : gemmTable(g));
    return 0;
  }
  const suite = positional[0] as Suite;
  if (!SUITES.includes(suite)) throw new CliError(`unknown suite '${suite}' (expected ${[...SUITES, 'gemm'].join(', ')})`);
  const arch = String(flags.arch) as Arch;
  if (!ARCHS.includes(arch)) throw new CliError(`--arch: '${arch}' is not one of ${ARCHS.join(', ')}`);
  const preset = String(flags.preset);
  getPreset(preset);
  for (const k of ['steps', 'warmup', 'batch', 'seq'] as const) {
    const v = flags[k];
    if (v !== undefined && (!Number.isInteger(v) || (v as number) < (k === 'warmup' ? 0 : 1))) throw new CliError(`--${k}: '${v}' must be a positive integer`);
  }
  const r = await runBench(suite, {
    preset, arch, steps: flags.steps as number, warmup: flags.warmup as number,
    B: flags.batch as number | undefined, T: flags.seq as number | undefined,
    torch: !flags['no-torch'], python: String(flags.python),
  });
  console.log(flags.json ? JSON.stringify(r) : table(r));
  return 0;
}
