// The demo from start to end: a base model trained from scratch on the parity task,
// then, from that same base, one RL run per method with the same number of sampled
// episodes and the same seed, each evaluated greedily on the same held-out problems
// with the random-first-attempt control. Everything derives from one seed, so the
// same seed (and thread count) gives the same table.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { initModel, type Model } from '../model/model.js';
import { plainFormat } from '../rl/format.js';
import { resolveConfig, type TrainConfig } from '../rl/config.js';
import { train, type EvalPoint, type StepMetrics } from '../rl/trainer.js';
import { evaluate, type EvalReport } from '../eval/evaluate.js';
import { writeJsonAtomic } from '../rl/files.js';
import { baseModelConfig, trainBase, DEFAULT_BASE_SIZE, type BaseProgress, type BaseRecipe } from './base.js';
import { demoTokenizer, splitSets, DEMO_INSTRUCTION, DEMO_SEPARATOR, ParityTask, DEFAULT_PARITY_OPTIONS } from './task.js';

export type MethodName = 'base' | 'single-turn RL' | 'w/o Stage I' | 'SCoRe' | 'w/o bonus';

/** The sizes of one demo; `quick` and `smoke` scale the default down. */
export interface DemoScale {
  base: Partial<BaseRecipe>;
  /** RL steps per method (the same for every method, so the same number of episodes) */
  rlSteps: number;
  promptsPerStep: number;
  /** held-out problems of the final table */
  heldout: number;
  /** evaluations during training (on `curveProblems` held-out problems) */
  evalEvery: number;
  curveProblems: number;
}

export const SCALES: Record<'default' | 'quick' | 'smoke', DemoScale> = {
  default: { base: { firstSteps: 800, stopAccuracy: 0.4, probeEvery: 50, secondSteps: 200 }, rlSteps: 300, promptsPerStep: 32, heldout: 1000, evalEvery: 25, curveProblems: 200 },
  quick: { base: { firstSteps: 600, stopAccuracy: 0.4, probeEvery: 50, secondSteps: 100 }, rlSteps: 100, promptsPerStep: 16, heldout: 1000, evalEvery: 25, curveProblems: 100 },
  smoke: { base: { firstSteps: 20, secondSteps: 5, probeEvery: 10 }, rlSteps: 4, promptsPerStep: 4, heldout: 50, evalEvery: 2, curveProblems: 20 },
};

/** RL settings shared by every method (scaled to this task; see docs/demo.md for why). */
export const DEMO_RL: Partial<TrainConfig> = {
  k: 4, lr: 1e-4, alpha: 3, beta1: 0.01, beta2: 0.1, kl: 'k1', maxNewTokens: 20, temperature: 1,
  checkpointEvery: 0, keepCheckpoints: 1, samplesPerStep: 2,
};

/** The methods as configurations of the one trainer; Stage I takes half the steps in SCoRe. */
export function methodConfig(name: Exclude<MethodName, 'base'>, steps: number): Partial<TrainConfig> {
  const half = Math.floor(steps / 2);
  switch (name) {
    case 'single-turn RL':
      return { singleTurn: true, stage1Steps: 0, stage2Steps: steps };
    case 'w/o Stage I':
      return { stage1Steps: 0, stage2Steps: steps };
    case 'SCoRe':
      return { stage1Steps: half, stage2Steps: steps - half };
    case 'w/o bonus':
      return { stage1Steps: half, stage2Steps: steps - half, alpha: 0 };
  }
}

export interface DemoOptions {
  scale: DemoScale;
  /** input length in bits (default DEFAULT_PARITY_OPTIONS) */
  bits?: number;
  seed: number;
  out: string;
  /** also the ablation without the progress bonus */
  ablations: boolean;
  threads: number;
  signal?: AbortSignal;
  onBase?: (p: BaseProgress) => void;
  onPhase?: (name: string, what: string) => void;
  onStep?: (method: MethodName, m: StepMetrics, steps: number) => void;
  onEval?: (method: MethodName, e: EvalPoint) => void;
}

export interface DemoRow {
  method: MethodName;
  report: EvalReport;
  /** per-step training metrics and the evaluations during training (none for the base) */
  steps: StepMetrics[];
  curve: EvalPoint[];
  seconds: number;
}

export interface DemoResult {
  seconds: number;
  heldout: number;
  seed: number;
  threads: number;
  base: { stepsA: number; stepsB: number; probeAccuracy: number; seconds: number; params: number };
  rows: DemoRow[];
  stopped: boolean;
  config: Record<string, unknown>;
}

export async function runDemo(o: DemoOptions): Promise<DemoResult> {
  const t0 = performance.now();
  const s = o.scale;
  mkdirSync(o.out, { recursive: true });
  const tok = demoTokenizer();
  const format = plainFormat(tok, { instruction: DEMO_INSTRUCTION, separator: DEMO_SEPARATOR });
  const taskOptions = o.bits ? { minBits: o.bits, maxBits: o.bits } : DEFAULT_PARITY_OPTIONS;
  const task = new ParityTask(taskOptions);
  const episodes = s.rlSteps * s.promptsPerStep * (DEMO_RL.k ?? 4);
  const sets = splitSets(o.seed, Math.max(2000, s.rlSteps * s.promptsPerStep + 200 * 64), s.heldout + 200, taskOptions);
  // 200 extra held-out problems are the base's probe set, kept apart from the table's
  const heldout = sets.heldout.slice(0, s.heldout), probe = sets.heldout.slice(s.heldout);
  const config = {
    task: { name: task.name, ...taskOptions, instruction: DEMO_INSTRUCTION },
    model: DEFAULT_BASE_SIZE, base: s.base, rl: DEMO_RL, rlSteps: s.rlSteps, promptsPerStep: s.promptsPerStep,
    episodesPerMethod: episodes, heldout: s.heldout, seed: o.seed, threads: o.threads,
  };
  writeJsonAtomic(join(o.out, 'config.json'), config);
  const hf = tok.toHuggingFace();
  const tokenizerFiles = { 'tokenizer.json': JSON.stringify(hf.tokenizer), 'tokenizer_config.json': JSON.stringify(hf.config) };

  // The base model.
  o.onPhase?.('base', `training a ${DEFAULT_BASE_SIZE.layers}-layer d=${DEFAULT_BASE_SIZE.dModel} GPT from scratch (first attempts, then two-attempt transcripts)`);
  const base = await initModel(baseModelConfig(tok.vocabSize, tok.eosTokenId, tok.bosTokenId), { seed: o.seed + 1 });
  const b = await trainBase({
    model: base, format, encode: (t) => tok.encode(t), train: sets.train, probe,
    recipe: { ...s.base, seed: o.seed }, signal: o.signal, onProgress: o.onBase,
  });
  await base.save(join(o.out, 'base'));
  for (const [f, text] of Object.entries(tokenizerFiles)) writeFileSync(join(o.out, 'base', f), text);
  const rows: DemoRow[] = [];
  const stopped = () => o.signal?.aborted === true;
  const evalHeldout = async (model: Model) =>
    evaluate({ model, task, records: heldout, format, maxNewTokens: DEMO_RL.maxNewTokens!, seed: o.seed, control: 'other', signal: o.signal });

  if (!stopped()) {
    o.onPhase?.('base', `evaluating the base on ${heldout.length} held-out problems`);
    const t = performance.now();
    rows.push({ method: 'base', report: await evalHeldout(base), steps: [], curve: [], seconds: (performance.now() - t) / 1000 });
  }

  const methods: Exclude<MethodName, 'base'>[] = ['single-turn RL', 'w/o Stage I', 'SCoRe', ...(o.ablations ? (['w/o bonus'] as const) : [])];
  for (const method of methods) {
    if (stopped()) break;
    const tm = performance.now();
    const cfg = resolveConfig(DEMO_RL, { promptsPerStep: s.promptsPerStep, evalEvery: s.evalEvery, seed: o.seed }, methodConfig(method, s.rlSteps));
    o.onPhase?.(method, `${episodes.toLocaleString('en-US')} episodes (${s.rlSteps} steps x ${s.promptsPerStep} prompts x k=${cfg.k})`);
    const policy = await base.clone({ trainable: true });
    const reference = await base.clone();
    const curve: EvalPoint[] = [];
    const r = await train({
      policy, reference, task, format, config: cfg, train: sets.train, evalSet: heldout.slice(0, s.curveProblems),
      out: join(o.out, 'runs', method.replace(/[^A-Za-z0-9]+/g, '-').replace(/^-|-$/g, '').toLowerCase()),
      checkpointFiles: tokenizerFiles, signal: o.signal,
      onStep: (m) => o.onStep?.(method, m, s.rlSteps),
      onEval: (e) => {
        curve.push(e);
        o.onEval?.(method, e);
      },
    });
    if (r.stopped || stopped()) break;
    o.onPhase?.(method, `evaluating on ${heldout.length} held-out problems`);
    rows.push({ method, report: await evalHeldout(policy), steps: r.metrics, curve, seconds: (performance.now() - tm) / 1000 });
    policy.dispose();
    reference.dispose();
  }
  const baseParams = base.numParams;
  base.dispose();
  return {
    seconds: (performance.now() - t0) / 1000, heldout: heldout.length, seed: o.seed, threads: o.threads,
    base: { ...b, params: baseParams }, rows, stopped: stopped(), config,
  };
}

/** The JSON object of the issue: fractions, one row per method. */
export function summaryJson(r: DemoResult) {
  return {
    seconds: Math.round(r.seconds * 10) / 10,
    heldout: r.heldout,
    rows: r.rows.map((row) => ({
      method: row.method,
      acc_t1: row.report.accT1.value,
      acc_t2: row.report.accT2.value,
      delta: row.report.delta.value,
      delta_i2c: row.report.deltaI2C.value,
      delta_c2i: row.report.deltaC2I.value,
      delta_ci95: row.report.delta.ci95,
      acc_t2_random_y1: row.report.accT2Control?.value ?? null,
    })),
  };
}
