import { describe, expect, it } from 'vitest';
import { MathTask } from '../../lib/tasks/math/task.js';
import { inferenceScaling, majority } from '../../lib/eval/scaling.js';
import { format, records, tinyModel, tinyTask } from '../rl/tiny.js';

describe('majority vote', () => {
  const math = new MathTask();
  const fa = (a: string) => `Work.\nFinal Answer: The final answer is $${a}$. I hope it is correct.`;
  it('merges equivalent answers (0.5 and \\frac12) and ignores completions without one', () => {
    const c = [fa('3'), fa('0.5'), 'no idea\nat all', fa('\\frac{1}{2}'), fa('\\frac12'), fa('3')];
    expect(majority(math, c)).toBe(fa('0.5'));
  });
  it('a tie goes to the answer seen first; no answers at all: null', () => {
    expect(majority(math, [fa('7'), fa('8')])).toBe(fa('7'));
    expect(majority(math, ['I am not sure.\nLet me think.', ''])).toBeNull(); // (a short one-line text counts as an answer)
  });
});

describe('inference-time scaling', () => {
  it('gives parallel and sequential accuracy per budget, nested budgets sharing samples', async () => {
    const model = await tinyModel(5);
    const task = { ...tinyTask, answerOf: (c: string) => (c.trim() === '' ? null : c.trim()) };
    const pts = await inferenceScaling({ model, task, records: records().slice(0, 6), format, maxNewTokens: 3, budgets: [2, 4], seed: 1 });
    expect(pts.map((p) => p.k)).toEqual([2, 4]);
    for (const p of pts) for (const v of [p.parallel, p.sequential]) expect(v >= 0 && v <= 1 && Number.isInteger(v * 6)).toBe(true);
    await expect(inferenceScaling({ model, task: tinyTask, records: records(), format, maxNewTokens: 3 })).rejects.toThrow(/no final answers/);
    await expect(inferenceScaling({ model, task, records: records(), format, maxNewTokens: 3, budgets: [3] })).rejects.toThrow(/even integers/);
    model.dispose();
  });
});
