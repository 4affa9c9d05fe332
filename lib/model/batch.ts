// Packing token sequences for the native core: ragged number[][] rows become
// one right-padded Int32Array (B*T) with per-row lengths (B).
import type { NativeBatch } from '../native/addon.js';
import { ScoreError } from './errors.js';

/** Ragged rows of token ids, or an already packed batch. */
export type TokensInput = readonly (readonly number[])[] | NativeBatch;

export function packTokens(input: TokensInput, what = 'tokens'): NativeBatch {
  if (!Array.isArray(input)) {
    const b = input as NativeBatch;
    if (!(b.tokens instanceof Int32Array) || !(b.lengths instanceof Int32Array))
      throw new ScoreError('ERR_SCORE_INVALID_ARGUMENT', `${what}: expected number[][] or {tokens: Int32Array, lengths: Int32Array, B, T}`);
    return b;
  }
  const rows = input as readonly (readonly number[])[];
  if (rows.length === 0) throw new ScoreError('ERR_SCORE_INVALID_ARGUMENT', `${what}: the batch is empty`);
  let T = 0;
  rows.forEach((r, i) => {
    if (!Array.isArray(r)) throw new ScoreError('ERR_SCORE_INVALID_ARGUMENT', `${what}[${i}] is not an array`);
    T = Math.max(T, r.length);
  });
  const B = rows.length;
  const tokens = new Int32Array(B * T);
  const lengths = new Int32Array(B);
  rows.forEach((r, b) => {
    lengths[b] = r.length;
    r.forEach((id, t) => {
      if (!Number.isInteger(id) || id < 0 || id > 0x7fffffff)
        throw new ScoreError('ERR_SCORE_INVALID_ARGUMENT', `${what}[${b}][${t}] = ${id} is not a token id`);
      tokens[b * T + t] = id;
    });
  });
  return { tokens, lengths, B, T };
}

/** (B, T-1) per-target values, zero past each row's end, from ragged rows of length len-1. */
export function packTargets(values: readonly (readonly number[])[] | Float32Array, batch: NativeBatch, what: string): Float32Array {
  const { B, T, lengths } = batch;
  if (values instanceof Float32Array) {
    if (values.length !== B * (T - 1))
      throw new ScoreError('ERR_SCORE_INVALID_ARGUMENT', `${what}: expected B*(T-1) = ${B * (T - 1)} values, got ${values.length}`);
    return values;
  }
  if (values.length !== B) throw new ScoreError('ERR_SCORE_INVALID_ARGUMENT', `${what}: expected ${B} rows, got ${values.length}`);
  const out = new Float32Array(B * (T - 1));
  values.forEach((row, b) => {
    const n = Math.max(0, lengths[b]! - 1);
    if (row.length !== n)
      throw new ScoreError('ERR_SCORE_INVALID_ARGUMENT', `${what}[${b}]: expected ${n} values (one per target token), got ${row.length}`);
    row.forEach((v, t) => (out[b * (T - 1) + t] = v));
  });
  return out;
}

/** Ones on every real target slot: plain next-token cross-entropy. */
export function fullMask(batch: NativeBatch): Float32Array {
  const { B, T, lengths } = batch;
  const out = new Float32Array(B * Math.max(0, T - 1));
  for (let b = 0; b < B; b++) for (let t = 0; t + 1 < lengths[b]!; t++) out[b * (T - 1) + t] = 1;
  return out;
}

/** Splits (B, T-1) packed values into ragged rows of lengths[b]-1. */
export function unpackRows(values: Float32Array, batch: NativeBatch): number[][] {
  const { B, T, lengths } = batch;
  const rows: number[][] = [];
  for (let b = 0; b < B; b++) rows.push(Array.from(values.subarray(b * (T - 1), b * (T - 1) + Math.max(0, lengths[b]! - 1))));
  return rows;
}

/** Sum of per-target values over real target slots only (slots past a row's end are ignored). */
export function targetSum(values: Float32Array, batch: NativeBatch): number {
  const { B, T, lengths } = batch;
  let s = 0;
  for (let b = 0; b < B; b++) for (let t = 0; t + 1 < lengths[b]! && t < T - 1; t++) s += values[b * (T - 1) + t]!;
  return s;
}
