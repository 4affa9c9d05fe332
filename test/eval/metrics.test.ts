import { describe, expect, it } from 'vitest';
import { editRatio, pairedDifference, twoAttemptMetrics, wilson } from '../../lib/eval/metrics.js';

describe('two-attempt metrics', () => {
  it('identities on constructed outcomes: Delta = i->c - c->i = Acc@t2 - Acc@t1; counts add up', () => {
    // 5 right->right, 3 wrong->right, 1 right->wrong, 11 wrong->wrong
    const o = [
      ...Array(5).fill({ c1: true, c2: true }), ...Array(3).fill({ c1: false, c2: true }),
      ...Array(1).fill({ c1: true, c2: false }), ...Array(11).fill({ c1: false, c2: false }),
    ];
    const m = twoAttemptMetrics(o);
    expect(m.n).toBe(20);
    expect(m.counts).toEqual({ rightRight: 5, wrongRight: 3, rightWrong: 1, wrongWrong: 11 });
    expect(m.accT1.value).toBe(6 / 20);
    expect(m.accT2.value).toBe(8 / 20);
    expect(m.deltaI2C.value).toBe(3 / 20);
    expect(m.deltaC2I.value).toBe(1 / 20);
    expect(m.delta.value).toBeCloseTo(m.accT2.value - m.accT1.value, 15);
    expect(m.delta.value).toBeCloseTo(m.deltaI2C.value - m.deltaC2I.value, 15);
  });
  it('Wilson interval: textbook value and the edges', () => {
    // 8 of 20: Wilson 95% = [0.2188, 0.6134] (the score formula evaluated independently in Python)
    const w = wilson(8, 20);
    expect(w.ci95[0]).toBeCloseTo(0.2188, 4);
    expect(w.ci95[1]).toBeCloseTo(0.6134, 4);
    expect(wilson(0, 10).ci95[0]).toBe(0);
    expect(wilson(10, 10).ci95[1]).toBe(1);
  });
  it('paired difference: zero-width when nothing changes; symmetric; excludes 0 for a clear gain', () => {
    expect(pairedDifference(0, 0, 100).ci95).toEqual([0, 0]);
    const a = pairedDifference(30, 10, 1000), b = pairedDifference(10, 30, 1000);
    expect(a.value).toBeCloseTo(0.02, 15);
    expect(a.ci95[0]).toBeCloseTo(-b.ci95[1], 15);
    // var = (40 - 400/1000)/1000^2 -> half width 1.96 * sqrt(3.96e-5) = 0.01233
    expect(a.ci95[1] - a.value).toBeCloseTo(1.959964 * Math.sqrt(3.96e-5), 6);
    expect(a.ci95[0]).toBeGreaterThan(0);
  });
  it('edit ratio: 0 for a copy, 1 for nothing in common, Levenshtein over the longer length', () => {
    expect(editRatio([1, 2, 3], [1, 2, 3])).toBe(0);
    expect(editRatio([1, 2], [3, 4])).toBe(1);
    expect(editRatio([1, 2, 3, 4], [1, 9, 3, 4])).toBe(0.25);
    expect(editRatio([1, 2, 3], [1, 2, 3, 4, 5, 6])).toBe(0.5);
    expect(editRatio([], [])).toBe(0);
  });
});
