// Inference-time scaling, as in the paper (Fig. 1 right / Sec. 6): with a budget of K
// samples per problem, compare (a) majority vote over K parallel first attempts with
// (b) K/2 first attempts each followed by one self-correction, majority vote over the
// K/2 second attempts. Samples at temperature 0.7. Budgets share samples: the votes for
// K use the first K (or K/2) samples of the largest budget.
import type { Model } from '../model/model.js';
import type { Task, TaskRecord } from '../tasks/task.js';
import type { EpisodeFormat } from '../rl/format.js';
import { ScoreError } from '../model/errors.js';
import { fitNewTokens } from './evaluate.js';

export interface ScalingOptions {
  model: Model;
  task: Task;
  records: readonly TaskRecord[];
  format: EpisodeFormat;
  maxNewTokens: number;
  /** budgets K (even, >= 2); default 2, 4, 8, 16, 32 */
  budgets?: number[];
  temperature?: number;
  seed?: number;
  signal?: AbortSignal;
  onProgress?: (done: number, total: number) => void;
}

export interface ScalingPoint {
  k: number;
  /** majority vote over K parallel first attempts */
  parallel: number;
  /** majority vote over the second attempts of K/2 self-corrected samples */
  sequential: number;
}

/** The completion whose answer wins the vote (ties: the answer seen first); null when none
 * gives an answer. Answers are merged when the task says they are the same. */
export function majority(task: Task, completions: readonly string[]): string | null {
  const groups: { answer: string; first: string; votes: number }[] = [];
  for (const c of completions) {
    const a = task.answerOf!(c);
    if (a === null) continue;
    const g = groups.find((x) => x.answer === a || (task.sameAnswer?.(x.answer, a) ?? false));
    if (g) g.votes++;
    else groups.push({ answer: a, first: c, votes: 1 });
  }
  let best: (typeof groups)[number] | null = null;
  for (const g of groups) if (!best || g.votes > best.votes) best = g;
  return best?.first ?? null;
}

export async function inferenceScaling(o: ScalingOptions): Promise<ScalingPoint[]> {
  if (!o.task.answerOf) throw new ScoreError('ERR_SCORE_INVALID_ARGUMENT', `task '${o.task.name}' has no final answers to vote on: inference-time scaling needs a task like math`);
  const budgets = o.budgets ?? [2, 4, 8, 16, 32];
  for (const k of budgets) if (!(Number.isInteger(k) && k >= 2 && k % 2 === 0)) throw new ScoreError('ERR_SCORE_INVALID_ARGUMENT', `scaling budgets must be even integers >= 2, got ${k}`);
  const K = Math.max(...budgets);
  const gen = { temperature: o.temperature ?? 0.7, eosId: o.format.eosId, stop: o.format.stop, signal: o.signal };
  const total = o.records.length * (K + K / 2);
  let done = 0;
  const points = budgets.map((k) => ({ k, parallel: 0, sequential: 0 }));
  for (let i = 0; i < o.records.length; i++) {
    const rec = o.records[i]!;
    const x1 = o.format.first(rec.prompt);
    // K first attempts; the first K/2 of them also get a self-correction
    const g1 = await o.model.generate([x1], { ...gen, n: K, seed: (o.seed ?? 0) * 1_000_003 + i, maxNewTokens: fitNewTokens(o.model, [x1], o.maxNewTokens, 'scaling') });
    const y1 = g1.sequences.map((s) => s.tokens);
    const x2 = y1.slice(0, K / 2).map((y) => o.format.second(x1, y));
    const g2 = await o.model.generate(x2, { ...gen, n: 1, seed: (o.seed ?? 0) * 1_000_003 + i + 7919, maxNewTokens: fitNewTokens(o.model, x2, o.maxNewTokens, 'scaling') });
    const first = y1.map((y) => o.format.text(y));
    const second = g2.sequences.map((s) => o.format.text(s.tokens));
    o.onProgress?.((done += K + K / 2), total);
    const correct = async (c: string | null) => c !== null && (await o.task.reward(c, rec)).correct;
    for (const p of points) {
      if (await correct(majority(o.task, first.slice(0, p.k)))) p.parallel++;
      if (await correct(majority(o.task, second.slice(0, p.k / 2)))) p.sequential++;
    }
  }
  return points.map((p) => ({ k: p.k, parallel: p.parallel / o.records.length, sequential: p.sequential / o.records.length }));
}
