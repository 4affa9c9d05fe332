import { describe, expect, it } from 'vitest';
import { generateRecords, gradeParity, makeRecord, parityAnswer, runningParity, splitSets, ParityTask } from '../../lib/demo/task.js';

describe('parity task: answers', () => {
  it('claim first, then the running parities', () => {
    expect(runningParity('0110')).toBe('0100');
    expect(parityAnswer('0110')).toBe('0:0100');
    expect(parityAnswer('10110')).toBe('1:11011');
    expect(parityAnswer('1')).toBe('1:1');
    expect(parityAnswer('00000000000000')).toBe('0:00000000000000');
  });
  it('the claim equals the last entry of the working and the xor of the bits', () => {
    for (const r of generateRecords(7, 200)) {
      const bits = r.meta.bits as string;
      const xor = [...bits].reduce((a, b) => a ^ (b === '1' ? 1 : 0), 0);
      expect(r.answer[0]).toBe(String(xor));
      expect(r.answer[r.answer.length - 1]).toBe(String(xor));
      expect(r.prompt).toBe(`${bits}=`);
    }
  });
});

describe('parity task: verifier', () => {
  const rec = makeRecord('0110', 'x');
  it('accepts the exact answer, with or without a trailing line', () => {
    expect(gradeParity('0:0100', rec).correct).toBe(true);
    expect(gradeParity('0:0100\nanything after', rec).correct).toBe(true);
    expect(gradeParity(' 0:0100 ', rec).correct).toBe(true);
  });
  it('rejects a wrong claim, a wrong working, a wrong length, garbage', () => {
    expect(gradeParity('1:0100', rec)).toEqual({ correct: false, reason: 'wrong claim' });
    expect(gradeParity('0:0110', rec)).toEqual({ correct: false, reason: '1 wrong in the working' });
    expect(gradeParity('1:1011', rec).reason).toBe('wrong claim, 4 wrong in the working');
    expect(gradeParity('0:010', rec).correct).toBe(false);
    expect(gradeParity('0:01000', rec).correct).toBe(false);
    expect(gradeParity('', rec).correct).toBe(false);
    expect(gradeParity('0100', rec).correct).toBe(false);
    expect(gradeParity('<eos>??', rec).correct).toBe(false);
  });
  it('is the Task interface', async () => {
    const t = new ParityTask();
    const recs = await t.load('3:5');
    expect(recs).toHaveLength(5);
    expect((await t.reward(recs[0]!.answer, recs[0]!)).correct).toBe(true);
    await expect(t.load('nonsense')).rejects.toThrow(/SEED:COUNT/);
  });
});

describe('parity task: generator', () => {
  it('the same seed gives the same problems; another seed others', () => {
    expect(generateRecords(1, 50)).toEqual(generateRecords(1, 50));
    expect(generateRecords(2, 50)).not.toEqual(generateRecords(1, 50));
    expect(generateRecords(1, 10)).toEqual(generateRecords(1, 50).slice(0, 10));
  });
  it('respects the bit range and is balanced', () => {
    const recs = generateRecords(5, 2000, { minBits: 6, maxBits: 9 });
    const lens = new Set(recs.map((r) => (r.meta.bits as string).length));
    expect([...lens].sort()).toEqual([6, 7, 8, 9]);
    const odd = recs.filter((r) => r.answer[0] === '1').length / recs.length;
    expect(odd).toBeGreaterThan(0.45);
    expect(odd).toBeLessThan(0.55);
  });
  it('held-out problems are distinct and never in the training list', () => {
    const { train, heldout } = splitSets(0, 5000, 1000);
    expect(new Set(heldout.map((r) => r.prompt)).size).toBe(1000);
    const held = new Set(heldout.map((r) => r.prompt));
    expect(train).toHaveLength(5000);
    expect(train.some((r) => held.has(r.prompt))).toBe(false);
    expect(splitSets(0, 5000, 1000)).toEqual({ train, heldout });
  });
  it('refuses more distinct problems than exist', () => {
    expect(() => splitSets(0, 10, 100, { minBits: 4, maxBits: 4 })).toThrow(/distinct/);
  });
});
