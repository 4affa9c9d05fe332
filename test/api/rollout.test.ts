// Generation and the RL step through the public API.
import { describe, expect, it } from 'vitest';
import { initModel, ScoreError } from '../../lib/index.js';

describe('Model.generate', () => {
  it('greedy generation equals argmax re-scoring, returned logp equal Model.logprobs', async () => {
    for (const arch of ['gpt2', 'llama', 'qwen2'] as const) {
      const m = await initModel({ arch, preset: 'tiny' }, { seed: 3 });
      const prompts = [[1, 2, 3], [4, 5, 6, 7, 8], [9]];
      const r = await m.generate(prompts, { temperature: 0, maxNewTokens: 8, eosId: null });
      expect(r.sequences).toHaveLength(3);
      for (const s of r.sequences) {
        expect(s.tokens).toHaveLength(8);
        expect(s.finish).toBe('length');
        const full = [...prompts[s.prompt]!, ...s.tokens];
        const lp = (await m.logprobs([full])).rows()[0]!.slice(prompts[s.prompt]!.length - 1);
        lp.forEach((v, t) => expect(Math.abs(v - s.logp[t]!)).toBeLessThan(5e-5));
      }
      m.dispose();
    }
  });

  it('n samples per prompt, reproducible by seed, progress reported, abort rejects', async () => {
    const m = await initModel({ arch: 'llama', preset: 'tiny' }, { seed: 4 });
    const steps: number[] = [];
    const a = await m.generate([[1, 2]], { n: 4, seed: 7, maxNewTokens: 6, eosId: null, onProgress: (s) => steps.push(s) });
    const b = await m.generate([[1, 2]], { n: 4, seed: 7, maxNewTokens: 6, eosId: null });
    expect(a.sequences.map((s) => s.tokens)).toEqual(b.sequences.map((s) => s.tokens));
    expect(a.sequences.map((s) => s.sample)).toEqual([0, 1, 2, 3]);
    await new Promise((r) => setTimeout(r, 20));  // progress calls arrive through the event loop
    expect(steps.length).toBeGreaterThan(0);
    const ac = new AbortController();
    ac.abort();
    await expect(m.generate([[1]], { signal: ac.signal })).rejects.toMatchObject({ code: 'ERR_SCORE_ABORTED' });
    const ac2 = new AbortController();
    const p = m.generate([[1, 2, 3]], { n: 16, maxNewTokens: 900, eosId: null, signal: ac2.signal });
    setTimeout(() => ac2.abort(), 30);
    await expect(p).rejects.toMatchObject({ code: 'ERR_SCORE_ABORTED' });
    // the model is usable after an abort
    expect((await m.generate([[1]], { maxNewTokens: 2 })).sequences).toHaveLength(1);
    m.dispose();
  });

  it('bad requests are clear errors', async () => {
    const m = await initModel({ arch: 'gpt2', preset: 'tiny' }, { seed: 5 });
    const cases: [Promise<unknown>, string][] = [
      [m.generate([[]]), 'prompts[0] is empty'],
      [m.generate([Array(1024).fill(1)]), 'no room to generate'],
      [m.generate([[1]], { n: 0 }), 'n must be >= 1'],
      [m.generate([[1]], { temperature: -1 }), 'temperature'],
      [m.generate([[1]], { topP: 0 }), 'topP'],
      [m.generate([[1]], { topP: 1.5 }), 'topP'],
      [m.generate([[1, 600]]), 'prompts[0][1] = 600'],
      [m.generate([[1]], { n: 1000, maxNewTokens: 500, memoryBudget: 1 << 20 }), 'MiB'],
    ];
    for (const [p, needle] of cases) await expect(p).rejects.toMatchObject({ message: expect.stringContaining(needle) });
    await expect(m.generate([[1]], { n: 0 })).rejects.toBeInstanceOf(ScoreError);
    m.dispose();
  });
});

describe('Model.rlStep', () => {
  it('rewarding one completion raises its probability; stats are reported', async () => {
    const m = await initModel({ arch: 'qwen2', preset: 'tiny' }, { seed: 6 });
    const ref = await m.clone();
    const good = [5, 6, 7, 8], bad = [5, 6, 9, 10];
    const score = async (s: number[]) => (await m.logprobs([s])).rows()[0]!.slice(1).reduce((a, v) => a + v, 0);
    const before = await score(good);
    for (let i = 0; i < 15; i++) {
      const tokens = [good, bad];
      const refLogp = (await ref.logprobs(tokens)).rows();
      const st = await m.rlStep({
        tokens, mask: [[0, 1, 1], [0, 1, 1]], wPg: [[0, 1, 1], [0, 1, 1]], advantages: [[0, 1, 1], [0, -1, -1]],
        wKl: [[0, 0.01, 0.01], [0, 0.01, 0.01]], refLogp, kl: 'k3',
      });
      expect(st.tokens).toBe(6);
      expect(st.entropy).toBeGreaterThan(0);
      await m.optimizerStep({ lr: 3e-3 });
    }
    expect(await score(good)).toBeGreaterThan(before + 1);
    await expect(m.rlStep({ tokens: [good], mask: [[1, 1]] })).rejects.toMatchObject({ message: expect.stringContaining('mask[0]') });
    await expect(m.rlStep({ tokens: [good], mask: [[1, 1, 1]], wPg: [[1, 1, 1]] })).rejects.toMatchObject({ message: expect.stringContaining('advantages') });
    await expect(m.rlStep({ tokens: [good], mask: [[1, 1, 1]], kl: 'k2' as 'k1' })).rejects.toMatchObject({ message: expect.stringContaining("'k1' or 'k3'") });
    await expect(ref.rlStep({ tokens: [good], mask: [[1, 1, 1]] })).rejects.toMatchObject({ message: expect.stringContaining('frozen') });
    m.dispose();
    ref.dispose();
  });

  it('micro-batches by a token budget accumulate to the same step; the reference must match', async () => {
    const a = await initModel({ arch: 'gpt2', preset: 'tiny' }, { seed: 8 });
    const b = await a.clone({ trainable: true });
    const ref = await a.clone();
    const tokens = [[1, 2, 3, 4, 5], [6, 7, 8], [9, 10, 11, 12], [13, 14]];
    const rows = (f: (i: number, t: number) => number) => tokens.map((r, i) => r.slice(1).map((_, t) => f(i, t)));
    const batch = { tokens, mask: rows(() => 1), wPg: rows(() => 1), advantages: rows((i) => (i % 2 ? -1 : 1)), wKl: rows(() => 0.1), kl: 'k3' as const };
    const whole = await a.rlStep({ ...batch, reference: ref });
    const parts = await b.rlStep({ ...batch, reference: ref, microBatchTokens: 8 });
    expect(parts.tokens).toBe(whole.tokens);
    expect(parts.loss).toBeCloseTo(whole.loss, 5);
    const [ga, gb] = [await a.optimizerStep({ lr: 1e-3 }), await b.optimizerStep({ lr: 1e-3 })];
    expect(gb.gradNorm).toBeCloseTo(ga.gradNorm, 5);
    const [pa, pb] = [await a.getParams(), await b.getParams()];
    let maxDiff = 0;
    for (let i = 0; i < pa.length; i++) maxDiff = Math.max(maxDiff, Math.abs(pa[i]! - pb[i]!));
    expect(maxDiff).toBeLessThan(1e-6);
    const other = await initModel({ arch: 'llama', preset: 'tiny' });
    await expect(a.rlStep({ ...batch, reference: other })).rejects.toMatchObject({ message: expect.stringContaining('does not match the policy') });
    await expect(a.rlStep({ ...batch, reference: a })).rejects.toMatchObject({ message: expect.stringContaining('separate model') });
    for (const m of [a, b, ref, other]) m.dispose();
  });

  it("normalize 'sequence' averages within each sequence, then over sequences", async () => {
    const m = await initModel({ arch: 'gpt2', preset: 'tiny' }, { seed: 9 });
    const tokens = [[1, 2, 3, 4, 5, 6], [7, 8]];
    const ones = tokens.map((r) => r.slice(1).map(() => 1));
    const lp = (await m.logprobs(tokens)).rows();
    // with wPg = 1 and A = 1 the policy-gradient loss is -sum logp / norm
    const perToken = await m.rlStep({ tokens, mask: ones, wPg: ones, advantages: ones });
    const perSeq = await m.rlStep({ tokens, mask: ones, wPg: ones, advantages: ones, normalize: 'sequence' });
    const flat = lp.flat();
    expect(perToken.pgLoss).toBeCloseTo(-flat.reduce((a, v) => a + v, 0) / flat.length, 4);
    const seqMeans = lp.map((r) => -r.reduce((a, v) => a + v, 0) / r.length);
    expect(perSeq.pgLoss).toBeCloseTo((seqMeans[0]! + seqMeans[1]!) / 2, 4);
    m.dispose();
  });
});
