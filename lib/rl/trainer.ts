// The SCoRe trainer: for each step, sample k two-attempt episodes for a batch of
// prompts, weight their tokens by the stage's table (objective.ts), take one
// policy-gradient + KL step against the frozen reference, log, evaluate and
// checkpoint. Baselines are configurations of the same loop (config.ts).
// Every random choice derives from (seed, step), so a resumed run repeats an
// uninterrupted one exactly.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Model } from '../model/model.js';
import { groupRows, type RlStats } from '../model/rollout.js';
import type { Task, TaskRecord } from '../tasks/task.js';
import { ScoreError } from '../model/errors.js';
import { evaluate, type EvalReport } from '../eval/evaluate.js';
import { schedule, type TrainConfig } from './config.js';
import { buildBatch, sampleEpisodes, type Episode } from './episodes.js';
import { appendJsonl, ensureDir, truncateJsonl, writeJsonAtomic } from './files.js';
import { markBest, pruneCheckpoints, readMarker, restoreLatest, saveCheckpoint, type TrainerState } from './checkpoint.js';
import type { EpisodeFormat } from './format.js';
import { deriveSeed, permutation } from './random.js';
import type { Stage } from './objective.js';

export interface StepMetrics {
  step: number;
  stage: Stage;
  episodes: number;
  reward_t1: number;
  /** null in single-turn RL */
  reward_t2: number | null;
  shaped_t2: number | null;
  kl_t1: number;
  kl_t2: number | null;
  entropy: number;
  len_t1: number;
  len_t2: number | null;
  loss: number;
  grad_norm: number;
  clip_scale: number;
  skipped: boolean;
  sampled_tokens: number;
  /** sampled tokens per second of the whole step (wall clock) */
  tokens_per_s: number;
  time_s: number;
}

export interface EvalPoint {
  step: number;
  n: number;
  acc_t1: number;
  acc_t2: number;
  delta: number;
  delta_i2c: number;
  delta_c2i: number;
  delta_ci95: [number, number];
  acc_t2_control: number | null;
  edit_ratio: number;
}

export interface TrainOptions {
  policy: Model;
  /** the frozen initial model (Model.clone() before training) */
  reference: Model;
  task: Task;
  train: readonly TaskRecord[];
  evalSet?: readonly TaskRecord[];
  format: EpisodeFormat;
  config: TrainConfig;
  /** run folder (metrics.jsonl, samples.jsonl, evals.jsonl, checkpoints/); none: nothing written */
  out?: string;
  /** continue from out/checkpoints/latest.json */
  resume?: boolean;
  /** extra files copied into every checkpoint (tokenizer.json, ...) */
  checkpointFiles?: Record<string, string>;
  /** stops at the next step boundary (a step being sampled is dropped), then checkpoints */
  signal?: AbortSignal;
  /** after each step (awaited) */
  onStep?: (m: StepMetrics) => void | Promise<void>;
  onEval?: (e: EvalPoint, report: EvalReport) => void;
}

export interface TrainResult {
  steps: number;
  metrics: StepMetrics[];
  evals: EvalPoint[];
  /** stopped by the signal before the schedule ended */
  stopped: boolean;
  best: { step: number; reward: number } | null;
}

export function evalPoint(step: number, r: EvalReport): EvalPoint {
  return {
    step, n: r.n, acc_t1: r.accT1.value, acc_t2: r.accT2.value, delta: r.delta.value, delta_i2c: r.deltaI2C.value,
    delta_c2i: r.deltaC2I.value, delta_ci95: r.delta.ci95, acc_t2_control: r.accT2Control?.value ?? null, edit_ratio: r.editRatio,
  };
}

/** The records of one step: consecutive slices of a seeded permutation, a new one each epoch. */
function stepRecords(records: readonly TaskRecord[], seed: number, position: number, count: number): TaskRecord[] {
  const out: TaskRecord[] = [];
  let perm: number[] = [], epoch = -1;
  for (let p = position; p < position + count; p++) {
    const e = Math.floor(p / records.length);
    if (e !== epoch) [perm, epoch] = [permutation(records.length, deriveSeed(seed, e, 0xda7a)), e];
    out.push(records[perm[p % records.length]!]!);
  }
  return out;
}

const mean = (xs: readonly number[]) => (xs.length ? xs.reduce((s, x) => s + x, 0) / xs.length : 0);

/** Mean per-token KL estimate of an attempt's tokens (policy logp at sampling time vs reference). */
function klOf(logp: readonly number[], ref: readonly number[], kind: 'k1' | 'k3'): number[] {
  return logp.map((lp, j) => {
    const d = ref[j]! - lp;
    return kind === 'k1' ? -d : Math.exp(d) - d - 1;
  });
}

export async function train(o: TrainOptions): Promise<TrainResult> {
  const c = o.config;
  const stages = schedule(c);
  if (o.train.length === 0) throw new ScoreError('ERR_SCORE_INVALID_ARGUMENT', 'train: no training records');
  if (!o.policy.trainable) throw new ScoreError('ERR_SCORE_INVALID_ARGUMENT', 'train: the policy is frozen (pass a trainable model)');
  const out = o.out;
  const file = (f: string) => join(out!, f);
  let state: TrainerState = { step: 0, dataPosition: 0, seed: c.seed, rng: 'derived from seed and step' };
  const metrics: StepMetrics[] = [];
  const evals: EvalPoint[] = [];
  if (out) {
    ensureDir(out);
    if (o.resume) {
      const restored = await restoreLatest(out, o.policy);
      if (restored) state = restored;
      // lines past the checkpoint belong to steps that run again
      metrics.push(...truncateJsonl<StepMetrics>(file('metrics.jsonl'), (m) => m.step <= state.step));
      evals.push(...truncateJsonl<EvalPoint>(file('evals.jsonl'), (e) => e.step <= state.step));
      truncateJsonl<{ step: number }>(file('samples.jsonl'), (s) => s.step <= state.step);
    } else if (existsSync(file('metrics.jsonl')) || readMarker(out, 'latest')) {
      throw new ScoreError('ERR_SCORE_INVALID_ARGUMENT', `${out}: holds a run already; pass resume to continue it, or choose a new folder`);
    }
    writeJsonAtomic(file('config.json'), c);
  }
  const evalLimit = c.evalLimit > 0 ? c.evalLimit : Infinity;
  const evalSet = o.evalSet?.slice(0, evalLimit);
  let stopped = false;
  let skippedInARow = 0;
  /** Evaluation inside training; false when the signal stopped it (the run then stops, and a
   * resumed run evaluates this step first). */
  const runEval = async (step: number): Promise<boolean> => {
    if (!evalSet?.length) return true;
    let r: EvalReport;
    try {
      r = await evaluate({ model: o.policy, task: o.task, records: evalSet, format: o.format, maxNewTokens: c.maxNewTokens, seed: c.seed, signal: o.signal });
    } catch (e) {
      if ((e as { code?: string }).code === 'ERR_SCORE_ABORTED') return false;
      throw e;
    }
    const p = evalPoint(step, r);
    evals.push(p);
    if (out) appendJsonl(file('evals.jsonl'), p);
    o.onEval?.(p, r);
    return true;
  };
  const isEvalStep = (step: number) => step > 0 && c.evalEvery > 0 && step % c.evalEvery === 0;
  const checkpoint = async (regular: boolean) => {
    if (!out) return;
    await saveCheckpoint(out, o.policy, state, o.checkpointFiles);
    // The paper's selection rule: the best training reward of the final attempt, judged over
    // the steps since the previous regular checkpoint (from the metrics, so resumed runs agree).
    if (regular) {
      const ce = c.checkpointEvery;
      const from = ce > 0 ? state.step - ((state.step - 1) % ce) - 1 : 0;
      const window = metrics.filter((m) => m.step > from).map((m) => m.reward_t2 ?? m.reward_t1);
      const reward = mean(window);
      if (window.length && (!best || reward > best.reward)) {
        best = { step: state.step, reward };
        markBest(out, state.step, reward);
      }
    }
    pruneCheckpoints(out, c.keepCheckpoints);
  };
  let best = out ? (readMarker(out, 'best') as { step: number; reward: number } | null) : null;
  // a run stopped during an evaluation evaluates that step first
  if (o.resume && isEvalStep(state.step) && !evals.some((e) => e.step === state.step)) stopped = !(await runEval(state.step));

  while (!stopped && state.step < stages.length) {
    if (o.signal?.aborted) {
      stopped = true;
      break;
    }
    const step = state.step + 1;
    const stage = stages[state.step]!;
    const t0 = Date.now();
    const records = stepRecords(o.train, c.seed, state.dataPosition, c.promptsPerStep);
    let episodes: Episode[];
    try {
      episodes = await sampleEpisodes(o.policy, o.task, o.format, records, {
        k: c.k, temperature: c.temperature, topP: c.topP, maxNewTokens: c.maxNewTokens, twoTurns: !c.singleTurn,
        seed1: deriveSeed(c.seed, step, 1), seed2: deriveSeed(c.seed, step, 2), signal: o.signal,
      });
    } catch (e) {
      const code = (e as { code?: string }).code;
      if (code === 'ERR_SCORE_ABORTED') {
        stopped = true;
        break;
      }
      if (code === 'ERR_SCORE_NUMERIC')
        throw new ScoreError(code, `step ${step}: ${(e as Error).message} (the model's numbers are no longer finite); the last checkpoint is ${out ? (readMarker(out, 'latest')?.dir ?? 'none') : 'none (no run folder)'}`);
      throw e;
    }
    const eb = buildBatch(episodes, stage, { ...c, k: c.k });
    const rows = eb.batch.tokens as number[][];
    const refLogp = await referenceLogprobs(o.reference, rows, c.microBatchTokens);
    const stats: RlStats = await o.policy.rlStep({
      ...eb.batch, refLogp, kl: c.kl, normalize: c.normalize,
      ...(c.clipEps > 0 ? { clipEps: c.clipEps } : { oldLogp: undefined }),
      ...(c.microBatchTokens > 0 ? { microBatchTokens: c.microBatchTokens } : {}),
    });
    const opt = await o.policy.optimizerStep({ lr: c.lr, beta1: c.adamBeta1, beta2: c.adamBeta2, weightDecay: c.weightDecay, maxGradNorm: c.maxGradNorm });
    const kl1: number[] = [], kl2: number[] = [];
    episodes.forEach((e, i) => {
      const sp = eb.spans[i]!;
      kl1.push(...klOf(e.y1.logp, refLogp[i]!.slice(sp.y1[0], sp.y1[1]), c.kl));
      if (sp.y2) kl2.push(...klOf(e.y2!.logp, refLogp[i]!.slice(sp.y2[0], sp.y2[1]), c.kl));
    });
    const twoTurns = !c.singleTurn;
    const sampled = episodes.reduce((s, e) => s + e.y1.tokens.length + (e.y2?.tokens.length ?? 0), 0);
    const seconds = (Date.now() - t0) / 1000;
    const m: StepMetrics = {
      step, stage, episodes: episodes.length,
      reward_t1: mean(episodes.map((e) => e.y1.reward)),
      reward_t2: twoTurns ? mean(episodes.map((e) => e.y2!.reward)) : null,
      shaped_t2: twoTurns ? mean(eb.shaped) : null,
      kl_t1: mean(kl1), kl_t2: twoTurns ? mean(kl2) : null,
      entropy: stats.entropy,
      len_t1: mean(episodes.map((e) => e.y1.tokens.length)),
      len_t2: twoTurns ? mean(episodes.map((e) => e.y2!.tokens.length)) : null,
      loss: stats.loss, grad_norm: opt.gradNorm, clip_scale: opt.clipScale, skipped: opt.skipped,
      sampled_tokens: sampled, tokens_per_s: sampled / Math.max(seconds, 1e-9), time_s: seconds,
    };
    state = { ...state, step, dataPosition: state.dataPosition + c.promptsPerStep };
    metrics.push(m);
    if (out) {
      appendJsonl(file('metrics.jsonl'), m);
      for (const e of episodes.slice(0, c.samplesPerStep))
        appendJsonl(file('samples.jsonl'), {
          step, stage, id: e.record.id, y1: o.format.text(e.y1.tokens), r1: e.y1.reward, ...(e.y2 ? { y2: o.format.text(e.y2.tokens), r2: e.y2.reward } : {}),
        });
    }
    await o.onStep?.(m);
    // Numerical faults: the native optimizer skips a step whose gradient norm is not finite
    // (weights and moments untouched). Stop when asked, or when it keeps happening.
    skippedInARow = m.skipped ? skippedInARow + 1 : 0;
    if (m.skipped && (c.nonFinite === 'stop' || skippedInARow >= c.maxSkippedSteps)) {
      const why = c.nonFinite === 'stop' ? 'nonFinite is stop' : `${skippedInARow} steps in a row`;
      throw new ScoreError('ERR_SCORE_NUMERIC', `step ${step}: non-finite gradient (loss ${m.loss}, grad norm ${m.grad_norm}); stopping (${why}). The last checkpoint is ${out ? (readMarker(out, 'latest')?.dir ?? 'none') : 'none (no run folder)'}`);
    }
    // checkpoint before evaluating: a stop during the evaluation then loses nothing
    if (c.checkpointEvery > 0 && step % c.checkpointEvery === 0) await checkpoint(true);
    if (isEvalStep(step) && !(await runEval(step))) {
      stopped = true;
      break;
    }
  }
  if (!stopped && evalSet?.length && !evals.some((e) => e.step === state.step)) stopped = !(await runEval(state.step));
  if (out && readMarker(out, 'latest')?.step !== state.step) await checkpoint(!stopped);
  return { steps: state.step, metrics, evals, stopped, best };
}

/** Reference log-probabilities per row, in groups of rows under the token budget (the whole
 * batch at once keeps a (B, H, T, T) attention tensor). */
async function referenceLogprobs(reference: Model, rows: number[][], budget: number): Promise<number[][]> {
  const out: number[][] = [];
  for (const [lo, hi] of groupRows(rows, budget > 0 ? budget : 16384)) out.push(...(await reference.logprobs(rows.slice(lo, hi))).rows());
  return out;
}
