// The demo's base model: a small GPT-2-style transformer trained from scratch with
// the native SFT step, in two phases.
//
// Phase A (first attempts): x1 -> the right answer, loss on the answer tokens only.
//   Stops when greedy first-attempt accuracy on a probe set reaches a target in the
//   paper-like range (30-60%) or after a step budget. On the parity task the working
//   (running parities) is learned in a few hundred steps while the claim, the global
//   parity written first, stays near a coin flip, so accuracy settles around 50%.
// Phase B (second attempts): transcripts x1 + y1 + instruction + y2 where y1 AND y2
//   are two independent samples of the phase-A model's own first attempt; the loss
//   is on y2 only. The base thus answers the second turn afresh, as it would have
//   answered the first, without reading y1: before RL its second attempt does not
//   improve on the first (Delta ~ 0, few edits), the starting point of the paper.
//   Training y2 on the right answer instead would teach correction by supervision
//   (and SCoRe would have nothing to show); training y2 to copy y1 makes every
//   sampled second attempt a copy, so RL could never find a better one.
import type { Model } from '../model/model.js';
import type { EpisodeFormat } from '../rl/format.js';
import type { TaskRecord } from '../tasks/task.js';
import { mulberry32 } from '../rl/random.js';
import { gradeParity } from './task.js';

export interface BaseModelSize {
  layers: number;
  dModel: number;
  heads: number;
  /** longest sequence (positions) */
  positions: number;
}

export const DEFAULT_BASE_SIZE: BaseModelSize = { layers: 2, dModel: 128, heads: 4, positions: 96 };

/** A Hugging Face GPT-2 config.json object for the demo's character vocabulary. */
export function baseModelConfig(vocab: number, eosId: number, bosId: number, size: BaseModelSize = DEFAULT_BASE_SIZE): Record<string, unknown> {
  return {
    architectures: ['GPT2LMHeadModel'],
    model_type: 'gpt2',
    vocab_size: vocab,
    n_positions: size.positions,
    n_embd: size.dModel,
    n_layer: size.layers,
    n_head: size.heads,
    n_inner: null,
    layer_norm_epsilon: 1e-5,
    activation_function: 'gelu_new',
    tie_word_embeddings: true,
    bos_token_id: bosId,
    eos_token_id: eosId,
  };
}

export interface BaseRecipe {
  /** phase A: most SFT steps, and the greedy accuracy at which it stops early */
  firstSteps: number;
  stopAccuracy: number;
  /** fraction of first-attempt examples whose claim is flipped and not trained (keeps the working honest) */
  flipClaims: number;
  /** phase A: check the probe accuracy every this many steps */
  probeEvery: number;
  /** phase B: SFT steps on two-attempt transcripts (half of each batch stays on first attempts) */
  secondSteps: number;
  /** phase B learning rate */
  secondLr: number;
  batch: number;
  lr: number;
  seed: number;
  maxNewTokens: number;
}

export const DEFAULT_BASE_RECIPE: BaseRecipe = { firstSteps: 600, stopAccuracy: 0.4, flipClaims: 0.5, probeEvery: 100, secondSteps: 300, secondLr: 5e-4, batch: 64, lr: 1e-3, seed: 0, maxNewTokens: 24 };

export interface BaseProgress {
  phase: 'A' | 'B';
  step: number;
  steps: number;
  loss: number;
  tokensPerS: number;
  probeAccuracy?: number;
}

/** One sequence and its loss mask (1 on the targets that are trained). */
interface SftRow {
  tokens: number[];
  mask: number[];
}

function answerTokens(format: EpisodeFormat, rec: TaskRecord, encode: (s: string) => number[]): number[] {
  return [...encode(rec.answer), ...(format.eosId === null ? [] : [format.eosId])];
}

/**
 * A first-attempt example. With probability `flip` the claim (the answer's first
 * symbol) is replaced by the wrong one and not trained on: the working after it is
 * still the right one. Without this the network learns that the working's last entry
 * equals the claim (always true in correct answers, and easier than the last step of
 * the running parity), so a wrong claim drags the working with it and a first attempt
 * no longer carries the evidence that it is wrong (measured: docs/demo.md). With it,
 * the working is computed from the input whatever was claimed, as an honest student's
 * derivation would be; nothing here teaches a second attempt anything.
 */
function firstAttemptRow(format: EpisodeFormat, rec: TaskRecord, encode: (s: string) => number[], flip: boolean): SftRow {
  const prefix = format.first(rec.prompt);
  if (!flip) return maskedRow(prefix, answerTokens(format, rec, encode));
  const wrong = { ...rec, answer: (rec.answer[0] === '1' ? '0' : '1') + rec.answer.slice(1) };
  const row = maskedRow(prefix, answerTokens(format, wrong, encode));
  row.mask[prefix.length - 1] = 0;
  return row;
}

/** prefix + completion with the loss on the completion's tokens only (mask has length-1 entries). */
function maskedRow(prefix: readonly number[], completion: readonly number[]): SftRow {
  const tokens = [...prefix, ...completion];
  const mask = tokens.slice(1).map((_, t) => (t + 1 >= prefix.length ? 1 : 0));
  return { tokens, mask };
}

async function sftOn(model: Model, rows: SftRow[], lr: number): Promise<{ loss: number; tokens: number }> {
  const r = await model.sftStep({ tokens: rows.map((r) => r.tokens), mask: rows.map((r) => r.mask) });
  await model.optimizerStep({ lr, weightDecay: 0.01, maxGradNorm: 1 });
  return { loss: r.loss, tokens: r.tokens };
}

/** Greedy first-attempt accuracy of `model` on `records` (a quick probe, not the evaluation). */
export async function probeFirstAttempt(model: Model, format: EpisodeFormat, records: TaskRecord[], maxNewTokens: number): Promise<number> {
  const g = await model.generate(records.map((r) => format.first(r.prompt)), { temperature: 0, maxNewTokens, eosId: format.eosId, stop: format.stop });
  let right = 0;
  g.sequences.forEach((s, i) => (right += gradeParity(format.text(s.tokens), records[i]!).correct ? 1 : 0));
  return right / records.length;
}

/**
 * Trains `model` (freshly initialised) into the demo's base model. `encode` is the
 * tokenizer's encode (the answer is supervised as text); `probe` are problems kept
 * out of training for the stopping rule.
 */
export async function trainBase(opts: {
  model: Model;
  format: EpisodeFormat;
  encode: (s: string) => number[];
  train: TaskRecord[];
  probe: TaskRecord[];
  recipe?: Partial<BaseRecipe>;
  signal?: AbortSignal;
  onProgress?: (p: BaseProgress) => void;
}): Promise<{ stepsA: number; stepsB: number; probeAccuracy: number; seconds: number }> {
  const rc = { ...DEFAULT_BASE_RECIPE, ...opts.recipe };
  const { model, format, train } = opts;
  const t0 = performance.now();
  let cursor = 0;
  // Records in a fixed order (the generator is already random), cycling.
  const nextBatch = () => {
    const out: TaskRecord[] = [];
    for (let i = 0; i < rc.batch; i++) out.push(train[(cursor++) % train.length]!);
    return out;
  };
  const aborted = () => opts.signal?.aborted === true;
  const rnd = mulberry32(rc.seed * 7919 + 17);

  let probeAccuracy = 0, stepsA = 0;
  let tokens = 0, since = performance.now();
  for (let step = 1; step <= rc.firstSteps && !aborted(); step++) {
    const rows = nextBatch().map((r) => firstAttemptRow(format, r, opts.encode, rnd() < rc.flipClaims));
    const r = await sftOn(model, rows, rc.lr);
    tokens += r.tokens;
    stepsA = step;
    const probeNow = step % rc.probeEvery === 0 || step === rc.firstSteps;
    if (probeNow) probeAccuracy = await probeFirstAttempt(model, format, opts.probe, rc.maxNewTokens);
    const now = performance.now();
    opts.onProgress?.({ phase: 'A', step, steps: rc.firstSteps, loss: r.loss, tokensPerS: (tokens * 1000) / Math.max(1, now - since), probeAccuracy: probeNow ? probeAccuracy : undefined });
    if (probeNow && probeAccuracy >= rc.stopAccuracy) break;
  }

  // Phase B: y1, y2 = two independent temperature-1 samples of the model's first attempt.
  tokens = 0;
  since = performance.now();
  let stepsB = 0;
  for (let step = 1; step <= rc.secondSteps && !aborted(); step++) {
    // Half the batch keeps training first attempts on the right answers: the second
    // turn is a new context for the network, and training it alone disturbs the
    // shared weights enough to wreck the first turn within tens of steps.
    const batch = nextBatch();
    const keep = batch.slice(0, rc.batch >> 1).map((r) => firstAttemptRow(format, r, opts.encode, rnd() < rc.flipClaims));
    const recs = batch.slice(keep.length);
    const x1 = recs.map((r) => format.first(r.prompt));
    const g = await model.generate(x1, { n: 2, temperature: 1, maxNewTokens: rc.maxNewTokens, eosId: format.eosId, stop: format.stop, seed: rc.seed * 1_000_003 + step });
    const rows = keep.concat(recs.map((_, i) => {
      const y1 = g.sequences[2 * i]!.tokens, y2 = g.sequences[2 * i + 1]!.tokens;
      return maskedRow(format.second(x1[i]!, y1), closeWithEos(y2, format.eosId));
    }));
    const r = await sftOn(model, rows, rc.secondLr);
    tokens += r.tokens;
    stepsB = step;
    opts.onProgress?.({ phase: 'B', step, steps: rc.secondSteps, loss: r.loss, tokensPerS: (tokens * 1000) / Math.max(1, performance.now() - since) });
  }
  return { stepsA, stepsB, probeAccuracy, seconds: (performance.now() - t0) / 1000 };
}

function closeWithEos(y: readonly number[], eos: number | null): number[] {
  return eos === null || y[y.length - 1] === eos ? [...y] : [...y, eos];
}
