// Two-attempt evaluation (greedy by default): first attempts for every problem, then
// second attempts after the self-correction instruction, and a control that tells
// self-correction from solving twice: the second attempt after ANOTHER problem's
// first attempt (or random tokens). If the second attempt does not read the first,
// Acc@t2 and the control's Acc@t2 are equal.
import type { Model } from '../model/model.js';
import type { Task, TaskRecord } from '../tasks/task.js';
import type { EpisodeFormat } from '../rl/format.js';
import { ScoreError } from '../model/errors.js';
import { editRatio, twoAttemptMetrics, wilson, type Estimate, type TwoAttemptMetrics } from './metrics.js';
import { mulberry32 } from '../rl/random.js';

export type Control = 'other' | 'random' | 'none';

export interface EvalOptions {
  model: Model;
  task: Task;
  records: readonly TaskRecord[];
  format: EpisodeFormat;
  maxNewTokens: number;
  /** 0 = greedy (default) */
  temperature?: number;
  seed?: number;
  /** problems per generate call (default 64) */
  batchSize?: number;
  /** 'other': y1 of another problem (default); 'random': random tokens of the same length
   * drawn from the tokens of all first attempts; 'none': no control */
  control?: Control;
  signal?: AbortSignal;
  onProgress?: (done: number, total: number) => void;
}

export interface EvalSample {
  id: string;
  y1: string;
  y2: string;
  c1: boolean;
  c2: boolean;
}

export interface EvalReport extends TwoAttemptMetrics {
  control: Control;
  /** Acc@t2 with the first attempt replaced as `control` says */
  accT2Control: Estimate | null;
  /** mean edit-distance ratio between the two attempts (0 = copies) */
  editRatio: number;
  meanLen1: number;
  meanLen2: number;
  seconds: number;
  samples: EvalSample[];
}

/** The largest number of new tokens that fits after the longest prompt. */
export function fitNewTokens(model: Model, prompts: readonly (readonly number[])[], wanted: number, what: string): number {
  const longest = prompts.reduce((m, p) => Math.max(m, p.length), 0);
  const room = model.maxPositions - longest;
  if (room < 1) throw new ScoreError('ERR_SCORE_INVALID_ARGUMENT', `${what}: a prompt of ${longest} tokens leaves no room in the model's ${model.maxPositions} positions`);
  return Math.min(wanted, room);
}

export async function evaluate(o: EvalOptions): Promise<EvalReport> {
  const t0 = Date.now();
  const n = o.records.length;
  if (n === 0) throw new ScoreError('ERR_SCORE_INVALID_ARGUMENT', 'evaluate: no records');
  const bs = o.batchSize ?? 64;
  const control = o.control ?? 'other';
  const gen = { temperature: o.temperature ?? 0, eosId: o.format.eosId, stop: o.format.stop, signal: o.signal };
  const x1 = o.records.map((r) => o.format.first(r.prompt));
  const total = control === 'none' ? 2 * n : 3 * n;
  let done = 0;
  const tick = (k: number) => o.onProgress?.((done += k), total);

  const y1: number[][] = [];
  for (let i = 0; i < n; i += bs) {
    const part = x1.slice(i, i + bs);
    const g = await o.model.generate(part, { ...gen, seed: (o.seed ?? 0) + i, maxNewTokens: fitNewTokens(o.model, part, o.maxNewTokens, 'evaluate') });
    y1.push(...g.sequences.map((s) => s.tokens));
    tick(part.length);
  }
  const stand = control === 'none' ? null : controlAttempts(y1, control, o.seed ?? 0);
  const second = (ys: number[][]) => ys.map((y, i) => o.format.second(x1[i]!, y));
  const y2 = await generateAll(o, second(y1), bs, gen, (k) => tick(k));
  const y2c = stand ? await generateAll(o, second(stand), bs, gen, (k) => tick(k)) : null;

  const grade = (ys: number[][]) => Promise.all(ys.map((y, i) => o.task.reward(o.format.text(y), o.records[i]!).then((r) => r.correct)));
  const [c1, c2, cc] = await Promise.all([grade(y1), grade(y2), y2c ? grade(y2c) : Promise.resolve(null)]);
  const m = twoAttemptMetrics(c1.map((a, i) => ({ c1: a, c2: c2[i]! })));
  const mean = (xs: number[]) => xs.reduce((s, x) => s + x, 0) / xs.length;
  return {
    ...m,
    control,
    accT2Control: cc ? wilson(cc.filter(Boolean).length, n) : null,
    editRatio: mean(y1.map((a, i) => editRatio(a, y2[i]!))),
    meanLen1: mean(y1.map((y) => y.length)),
    meanLen2: mean(y2.map((y) => y.length)),
    seconds: (Date.now() - t0) / 1000,
    samples: o.records.map((r, i) => ({ id: r.id, y1: o.format.text(y1[i]!), y2: o.format.text(y2[i]!), c1: c1[i]!, c2: c2[i]! })),
  };
}

async function generateAll(o: EvalOptions, prompts: number[][], bs: number, gen: object, tick: (k: number) => void): Promise<number[][]> {
  const out: number[][] = [];
  for (let i = 0; i < prompts.length; i += bs) {
    const part = prompts.slice(i, i + bs);
    const g = await o.model.generate(part, { ...gen, seed: (o.seed ?? 0) + 7919 + i, maxNewTokens: fitNewTokens(o.model, part, o.maxNewTokens, 'evaluate') });
    out.push(...g.sequences.map((s) => s.tokens));
    tick(part.length);
  }
  return out;
}

/** First attempts that do not belong to the problem: the next problem's (a derangement for
 * n >= 2), or random tokens of the same length drawn from all first attempts' tokens. */
export function controlAttempts(y1: readonly number[][], control: 'other' | 'random', seed: number): number[][] {
  const n = y1.length;
  if (control === 'other') return y1.map((_, i) => [...y1[(i + 1) % n]!]);
  const pool = y1.flatMap((y) => y);
  const rand = mulberry32(seed ^ 0x5bd1e995);
  return y1.map((y) => {
    const last = y[y.length - 1];
    // keep the attempt's closing token (EOS) so the turn structure is the same
    return y.map((t, j) => (j === y.length - 1 && last !== undefined && pool.length > 0 ? t : pool[Math.floor(rand() * pool.length)]!));
  });
}
