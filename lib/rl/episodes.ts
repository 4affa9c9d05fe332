// Sampling SCoRe episodes and turning them into one RL batch.
// An episode is one sequence x1 + y1 [+ instruction + y2]: a single forward pass
// scores both attempts (the model is causal, so the y1 tokens see only x1).
import type { Model } from '../model/model.js';
import type { RlBatch } from '../model/rollout.js';
import type { Task, TaskRecord } from '../tasks/task.js';
import { fitNewTokens } from '../eval/evaluate.js';
import type { EpisodeFormat } from './format.js';
import { rlooAdvantages, secondTurnReward, turnWeights, type ObjectiveConfig, type Stage } from './objective.js';

export interface Attempt {
  tokens: number[];
  /** policy log-probabilities (temperature 1) at sampling time */
  logp: number[];
  reward: number;
  reason: string;
}

export interface Episode {
  record: TaskRecord;
  x1: number[];
  y1: Attempt;
  /** absent in single-turn RL */
  x2?: number[];
  y2?: Attempt;
}

export interface SampleOptions {
  k: number;
  temperature: number;
  topP: number;
  maxNewTokens: number;
  twoTurns: boolean;
  seed1: number;
  seed2: number;
  signal?: AbortSignal;
}

/** k episodes per record, grouped by record (the RLOO groups). */
export async function sampleEpisodes(model: Model, task: Task, format: EpisodeFormat, records: readonly TaskRecord[], o: SampleOptions): Promise<Episode[]> {
  const gen = { temperature: o.temperature, topP: o.topP, eosId: format.eosId, stop: format.stop, signal: o.signal };
  const x1 = records.map((r) => format.first(r.prompt));
  const g1 = await model.generate(x1, { ...gen, n: o.k, seed: o.seed1, maxNewTokens: fitNewTokens(model, x1, o.maxNewTokens, 'first attempt') });
  const episodes: Episode[] = g1.sequences.map((s) => ({
    record: records[s.prompt]!,
    x1: x1[s.prompt]!,
    y1: { tokens: s.tokens, logp: s.logp, reward: 0, reason: '' },
  }));
  if (o.twoTurns) {
    const x2 = episodes.map((e) => format.second(e.x1, e.y1.tokens));
    const g2 = await model.generate(x2, { ...gen, n: 1, seed: o.seed2, maxNewTokens: fitNewTokens(model, x2, o.maxNewTokens, 'second attempt') });
    g2.sequences.forEach((s, i) => {
      episodes[i]!.x2 = x2[i];
      episodes[i]!.y2 = { tokens: s.tokens, logp: s.logp, reward: 0, reason: '' };
    });
  }
  await Promise.all(
    episodes.flatMap((e) =>
      [e.y1, e.y2].filter((a): a is Attempt => a !== undefined).map(async (a) => {
        const r = await task.reward(format.text(a.tokens), e.record);
        a.reward = r.correct ? 1 : 0;
        a.reason = r.reason;
      }),
    ),
  );
  return episodes;
}

export interface EpisodeBatch {
  batch: RlBatch;
  /** where each attempt's targets sit in its row: [start, end) of the target index */
  spans: { y1: [number, number]; y2: [number, number] | null }[];
  /** the reward credited to the second attempt (shaped in Stage II) */
  shaped: number[];
  advantages1: number[];
  advantages2: number[] | null;
}

/** Per-token arrays for the native loss from episodes, following the stage's weight table. */
export function buildBatch(episodes: readonly Episode[], stage: Stage, c: ObjectiveConfig & { k: number }): EpisodeBatch {
  const w = turnWeights(stage, c);
  const r1 = episodes.map((e) => e.y1.reward);
  const adv1 = rlooAdvantages(r1, c.k);
  const twoTurns = w.y2 !== null;
  const shaped = twoTurns ? episodes.map((e) => secondTurnReward(stage, e.y1.reward, e.y2!.reward, c.alpha)) : [];
  const adv2 = twoTurns ? rlooAdvantages(shaped, c.k) : null;
  const tokens: number[][] = [], mask: number[][] = [], wPg: number[][] = [], adv: number[][] = [], wKl: number[][] = [], oldLogp: number[][] = [];
  const spans: EpisodeBatch['spans'] = [];
  episodes.forEach((e, i) => {
    const seq = twoTurns ? [...e.x2!, ...e.y2!.tokens] : [...e.x1, ...e.y1.tokens];
    const T = seq.length - 1; // target t is seq[t + 1]
    const row = () => new Array<number>(T).fill(0);
    const [m, pg, a, kl, old] = [row(), row(), row(), row(), row()];
    const put = (start: number, attempt: Attempt, tw: { pg: number; kl: number }, advantage: number): [number, number] => {
      for (let j = 0; j < attempt.tokens.length; j++) {
        const t = start - 1 + j;
        m[t] = 1;
        pg[t] = tw.pg;
        a[t] = advantage;
        kl[t] = tw.kl;
        old[t] = attempt.logp[j]!;
      }
      return [start - 1, start - 1 + attempt.tokens.length];
    };
    const s1 = put(e.x1.length, e.y1, w.y1, adv1[i]!);
    const s2 = twoTurns ? put(e.x2!.length, e.y2!, w.y2!, adv2![i]!) : null;
    tokens.push(seq);
    mask.push(m);
    wPg.push(pg);
    adv.push(a);
    wKl.push(kl);
    oldLogp.push(old);
    spans.push({ y1: s1, y2: s2 });
  });
  return { batch: { tokens, mask, wPg, advantages: adv, wKl, oldLogp }, spans, shaped, advantages1: adv1, advantages2: adv2 };
}
