import { describe, expect, it } from 'vitest';
import { rlooAdvantages, secondTurnReward, turnWeights } from '../../lib/rl/objective.js';
import { buildBatch, type Episode } from '../../lib/rl/episodes.js';

const c = { alpha: 10, beta1: 0.01, beta2: 0.1, singleTurn: false };

describe('the SCoRe weight table', () => {
  it('Stage I: no policy gradient on y1, KL beta2 on y1; y2 trained on r2 with KL beta1', () => {
    expect(turnWeights('I', c)).toEqual({ y1: { pg: 0, kl: 0.1 }, y2: { pg: 1, kl: 0.01 } });
  });
  it('Stage II: both turns trained, KL beta1 on both', () => {
    expect(turnWeights('II', c)).toEqual({ y1: { pg: 1, kl: 0.01 }, y2: { pg: 1, kl: 0.01 } });
  });
  it('single-turn RL: y1 only', () => {
    for (const s of ['I', 'II'] as const) expect(turnWeights(s, { ...c, singleTurn: true })).toEqual({ y1: { pg: 1, kl: 0.01 }, y2: null });
  });
  it('the progress bonus with alpha 10: wrong->right 11, right->right 1, wrong->wrong 0, right->wrong -10', () => {
    expect(secondTurnReward('II', 0, 1, 10)).toBe(11);
    expect(secondTurnReward('II', 1, 1, 10)).toBe(1);
    expect(secondTurnReward('II', 0, 0, 10)).toBe(0);
    expect(secondTurnReward('II', 1, 0, 10)).toBe(-10);
    // Stage I and alpha 0 (the "no shaping" ablation): the plain reward
    expect(secondTurnReward('I', 1, 0, 10)).toBe(0);
    expect(secondTurnReward('II', 0, 1, 0)).toBe(1);
  });
});

describe('RLOO', () => {
  it('subtracts the mean of the other samples of the same prompt', () => {
    // group 1: [1, 0, 0, 1]; group 2: [0, 0, 0, 1]
    const a = rlooAdvantages([1, 0, 0, 1, 0, 0, 0, 1], 4);
    const expected = [1 - 1 / 3, 0 - 2 / 3, 0 - 2 / 3, 1 - 1 / 3, 0 - 1 / 3, 0 - 1 / 3, 0 - 1 / 3, 1 - 0];
    a.forEach((x, i) => expect(x).toBeCloseTo(expected[i]!, 14));
    // a group where all agree carries no signal; advantages of a group sum to 0
    expect(rlooAdvantages([1, 1, 1], 3)).toEqual([0, 0, 0]);
    expect(rlooAdvantages([3, -1, 11, 0], 4).reduce((s, x) => s + x, 0)).toBeCloseTo(0, 12);
  });
  it('rejects k < 2 and ragged groups', () => {
    expect(() => rlooAdvantages([1, 0], 1)).toThrow(/k >= 2/);
    expect(() => rlooAdvantages([1, 0, 1], 2)).toThrow(/groups of 2/);
  });
});

describe('per-token batch', () => {
  const rec = { id: 'p', prompt: 'p', answer: 'a', meta: {} };
  // x1 = [1, 5, 6]; y1 = [7, 2]; x2 = x1 + y1 + [9]; y2 = [8, 8, 2]
  const ep = (r1: number, r2: number): Episode => ({
    record: rec, x1: [1, 5, 6], y1: { tokens: [7, 2], logp: [-1, -2], reward: r1, reason: '' },
    x2: [1, 5, 6, 7, 2, 9], y2: { tokens: [8, 8, 2], logp: [-3, -4, -5], reward: r2, reason: '' },
  });
  it('places each attempt on its own targets with its weights and advantage (Stage II)', () => {
    const eps = [ep(0, 1), ep(1, 1)];
    const b = buildBatch(eps, 'II', { ...c, k: 2 });
    expect(b.batch.tokens).toEqual([[1, 5, 6, 7, 2, 9, 8, 8, 2], [1, 5, 6, 7, 2, 9, 8, 8, 2]]);
    // targets: index t predicts token t+1; y1 = targets 2..3, y2 = targets 5..7; the instruction (target 4) is not trained
    expect(b.batch.mask).toEqual([[0, 0, 1, 1, 0, 1, 1, 1], [0, 0, 1, 1, 0, 1, 1, 1]]);
    expect(b.spans[0]).toEqual({ y1: [2, 4], y2: [5, 8] });
    // shaped r2: 0->1 gives 11, 1->1 gives 1; RLOO over k = 2: +-10; r1: 0 vs 1: -+1
    expect(b.shaped).toEqual([11, 1]);
    expect(b.advantages2).toEqual([10, -10]);
    expect(b.advantages1).toEqual([-1, 1]);
    const adv = b.batch.advantages as number[][];
    expect(adv[0]).toEqual([0, 0, -1, -1, 0, 10, 10, 10]);
    expect((b.batch.wKl as number[][])[0]).toEqual([0, 0, 0.01, 0.01, 0, 0.01, 0.01, 0.01]);
    expect((b.batch.oldLogp as number[][])[0]).toEqual([0, 0, -1, -2, 0, -3, -4, -5]);
  });
  it('Stage I: y1 tokens have no policy-gradient weight and KL beta2', () => {
    const b = buildBatch([ep(0, 1), ep(1, 0)], 'I', { ...c, k: 2 });
    expect((b.batch.wPg as number[][])[0]).toEqual([0, 0, 0, 0, 0, 1, 1, 1]);
    expect((b.batch.wKl as number[][])[0]).toEqual([0, 0, 0.1, 0.1, 0, 0.01, 0.01, 0.01]);
    expect(b.shaped).toEqual([1, 0]); // no bonus in Stage I
  });
  it('single-turn RL: the sequence is x1 + y1 only', () => {
    const b = buildBatch([ep(0, 1), ep(1, 0)], 'II', { ...c, singleTurn: true, k: 2 });
    expect(b.batch.tokens).toEqual([[1, 5, 6, 7, 2], [1, 5, 6, 7, 2]]);
    expect(b.batch.mask).toEqual([[0, 0, 1, 1], [0, 0, 1, 1]]);
    expect(b.advantages2).toBeNull();
  });
});
