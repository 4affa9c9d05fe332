// Types and packing for generation and the RL step (see Model.generate / Model.rlStep).
import type { NativeBatch } from '../native/addon.js';
import { packTargets, targetSum } from './batch.js';
import { ScoreError } from './errors.js';

export interface GenerateOptions {
  /** samples per prompt (an RL group); they share the prompt's prefill. Default 1 */
  n?: number;
  maxNewTokens?: number;
  /** 0 = greedy. Default 1 */
  temperature?: number;
  topK?: number;
  topP?: number;
  seed?: number;
  /** stop at this token (default: the config's eos_token_id; null: never) */
  eosId?: number | null;
  /** stop when the new tokens end with any of these sequences */
  stop?: number[][];
  /** bytes the KV cache may take; a larger request fails before allocating */
  memoryBudget?: number;
  signal?: AbortSignal;
  onProgress?: (step: number, active: number) => void;
}

export type FinishReason = 'length' | 'eos' | 'stop';
const FINISH: FinishReason[] = ['length', 'eos', 'stop'];

export interface Generation {
  /** index of its prompt, and sample index within the prompt's group */
  prompt: number;
  sample: number;
  tokens: number[];
  /** log-probabilities of the new tokens under the policy (temperature 1, no truncation) */
  logp: number[];
  /** ... and under the distribution actually sampled from (temperature, top-k, top-p) */
  logpSampling: number[];
  finish: FinishReason;
}

export interface GenerateResult {
  sequences: Generation[];
  kvCacheBytes: number;
  steps: number;
}

export function packRagged(rows: readonly (readonly number[])[], what: string): { flat: Int32Array; lengths: Int32Array } {
  if (!Array.isArray(rows)) throw new ScoreError('ERR_SCORE_INVALID_ARGUMENT', `${what} must be an array of token arrays`);
  const lengths = new Int32Array(rows.length);
  let total = 0;
  rows.forEach((r, i) => {
    if (!Array.isArray(r)) throw new ScoreError('ERR_SCORE_INVALID_ARGUMENT', `${what}[${i}] must be an array of token ids`);
    lengths[i] = r.length;
    total += r.length;
  });
  const flat = new Int32Array(total);
  let off = 0;
  rows.forEach((r, i) =>
    r.forEach((id: number, t: number) => {
      if (!Number.isInteger(id) || id < 0 || id > 0x7fffffff) throw new ScoreError('ERR_SCORE_INVALID_ARGUMENT', `${what}[${i}][${t}] = ${id} is not a token id`);
      flat[off++] = id;
    }),
  );
  return { flat, lengths };
}

export function unpackGeneration(
  r: { tokens: Int32Array; lengths: Int32Array; finish: Int32Array; logp: Float32Array; logpSampling: Float32Array; kvCacheBytes: number; steps: number },
  n: number,
): GenerateResult {
  const sequences: Generation[] = [];
  let off = 0;
  for (let s = 0; s < r.lengths.length; s++) {
    const len = r.lengths[s]!;
    sequences.push({
      prompt: Math.floor(s / n),
      sample: s % n,
      tokens: Array.from(r.tokens.subarray(off, off + len)),
      logp: Array.from(r.logp.subarray(off, off + len)),
      logpSampling: Array.from(r.logpSampling.subarray(off, off + len)),
      finish: FINISH[r.finish[s]!]!,
    });
    off += len;
  }
  return { sequences, kvCacheBytes: r.kvCacheBytes, steps: r.steps };
}

type PerToken = readonly (readonly number[])[] | Float32Array;

/** One RL micro-batch: sequences (prompt + completion) with per-target-token arrays. */
export interface RlBatch {
  tokens: readonly (readonly number[])[] | NativeBatch;
  /** which target tokens count (1) or not (0); ragged rows of lengths-1, or packed (B, T-1) */
  mask: PerToken;
  /** policy-gradient weight per token (0 = no policy-gradient term) */
  wPg?: PerToken;
  advantages?: PerToken;
  /** KL weight per token */
  wKl?: PerToken;
  /** log-probabilities of the frozen reference model (Model.logprobs of the reference) */
  refLogp?: PerToken;
  /** behaviour log-probabilities (for ratio clipping) */
  oldLogp?: PerToken;
  /** KL estimator: k1 = logp - ref, k3 = exp(ref - logp) - (ref - logp) - 1. Default k1 */
  kl?: 'k1' | 'k3';
  /** PPO-style ratio clipping epsilon; 0 / absent = none */
  clipEps?: number;
  /** 'token': divide by the number of masked tokens; 'sequence': average within each sequence, then over sequences. Default 'token' */
  normalize?: 'token' | 'sequence';
  /** override the divisor (e.g. the total over all micro-batches, for gradient accumulation) */
  norm?: number;
  /** run the batch in micro-batches of at most this many (padded) tokens, accumulating gradients */
  microBatchTokens?: number;
}

export interface RlStats {
  loss: number;
  pgLoss: number;
  klLoss: number;
  klMean: number;
  entropy: number;
  clipFrac: number;
  tokens: number;
  weightSum: number;
}

/** Consecutive [lo, hi) groups of rows whose padded size (rows x longest) fits the token budget
 * (a single row over the budget is a group of its own). */
export function groupRows(rows: readonly (readonly number[])[], budget: number): [number, number][] {
  const groups: [number, number][] = [];
  let start = 0, longest = 0;
  for (let i = 0; i < rows.length; i++) {
    const l = Math.max(longest, rows[i]!.length);
    if (i > start && l * (i - start + 1) > budget) {
      groups.push([start, i]);
      start = i;
      longest = rows[i]!.length;
    } else longest = l;
  }
  groups.push([start, rows.length]);
  return groups;
}

/** Splits a ragged RL batch into consecutive groups of rows whose padded size fits the budget. */
export function splitRows(b: RlBatch, budget: number): RlBatch[] {
  if (!Array.isArray(b.tokens)) throw new ScoreError('ERR_SCORE_INVALID_ARGUMENT', 'microBatchTokens needs tokens as number[][]');
  if (!(Number.isInteger(budget) && budget > 0)) throw new ScoreError('ERR_SCORE_INVALID_ARGUMENT', `microBatchTokens must be a positive integer, got ${budget}`);
  const rows = b.tokens as readonly (readonly number[])[];
  const groups = groupRows(rows, budget);
  const part = (v: PerToken | undefined, lo: number, hi: number, name: string) => {
    if (v === undefined) return undefined;
    if (v instanceof Float32Array) throw new ScoreError('ERR_SCORE_INVALID_ARGUMENT', `microBatchTokens needs ${name} as ragged rows`);
    return v.slice(lo, hi);
  };
  return groups.map(([lo, hi]) => ({
    ...b,
    tokens: rows.slice(lo, hi),
    mask: part(b.mask, lo, hi, 'mask')!,
    wPg: part(b.wPg, lo, hi, 'wPg'),
    advantages: part(b.advantages, lo, hi, 'advantages'),
    wKl: part(b.wKl, lo, hi, 'wKl'),
    refLogp: part(b.refLogp, lo, hi, 'refLogp'),
    oldLogp: part(b.oldLogp, lo, hi, 'oldLogp'),
    microBatchTokens: undefined,
  }));
}

/** Combines the stats of micro-batches normalised by one common divisor. */
export function addStats(parts: RlStats[]): RlStats {
  const sum = (k: keyof RlStats) => parts.reduce((a, p) => a + p[k], 0);
  const w = sum('weightSum') || 1;
  const mean = (k: keyof RlStats) => parts.reduce((a, p) => a + p[k] * p.weightSum, 0) / w;
  return { loss: sum('loss'), pgLoss: sum('pgLoss'), klLoss: sum('klLoss'), klMean: mean('klMean'), entropy: mean('entropy'), clipFrac: mean('clipFrac'), tokens: sum('tokens'), weightSum: sum('weightSum') };
}

export function packRl(b: RlBatch, batch: NativeBatch) {
  if (b.normalize !== undefined && b.normalize !== 'token' && b.normalize !== 'sequence')
    throw new ScoreError('ERR_SCORE_INVALID_ARGUMENT', `normalize must be 'token' or 'sequence', got '${String(b.normalize)}'`);
  const mask = packTargets(b.mask, batch, 'mask').slice();
  const opt = (v: PerToken | undefined, name: string) => (v === undefined ? undefined : packTargets(v, batch, name));
  const { B, T, lengths } = batch;
  let norm: number;
  if (b.normalize === 'sequence') {
    // weight 1/|masked tokens of its row| per token: each sequence counts once
    let rows = 0;
    for (let r = 0; r < B; r++) {
      let c = 0;
      for (let t = 0; t + 1 < lengths[r]!; t++) c += mask[r * (T - 1) + t]!;
      if (c > 0) {
        rows++;
        for (let t = 0; t < T - 1; t++) mask[r * (T - 1) + t]! /= c;
      }
    }
    norm = Math.max(rows, 1);
  } else {
    norm = targetSum(mask, batch) || 1;
  }
  if (b.norm !== undefined) {
    if (!(Number.isFinite(b.norm) && b.norm > 0)) throw new ScoreError('ERR_SCORE_INVALID_ARGUMENT', `norm must be a positive number, got ${b.norm}`);
    norm = b.norm;
  }
  return {
    ...batch,
    mask,
    wPg: opt(b.wPg, 'wPg'),
    advantages: opt(b.advantages, 'advantages'),
    wKl: opt(b.wKl, 'wKl'),
    refLogp: opt(b.refLogp, 'refLogp'),
    oldLogp: opt(b.oldLogp, 'oldLogp'),
    kl: b.kl ?? 'k1',
    clipEps: b.clipEps ?? 0,
    norm,
  };
}
