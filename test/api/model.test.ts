// The Model API through the real addon: golden values from PyTorch, save/load,
// frozen clones, queueing, dispose, event-loop liveness.
import { mkdtempSync, rmSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { initModel, loadModel, ScoreError } from '../../lib/index.js';
import { f64, i32, readSafetensors } from '../helpers/safetensors.js';

const fixtures = path.resolve(__dirname, '..', 'fixtures');
const tmp = mkdtempSync(path.join(os.tmpdir(), 'score-api-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('golden log-probabilities through the API', () => {
  for (const name of ['gpt2-tiny', 'llama-tiny', 'qwen2-tiny', 'qwen2-tiny-bf16']) {
    it(`${name} matches PyTorch`, async () => {
      const g = readSafetensors(path.join(fixtures, 'golden', `${name}.safetensors`));
      const tokens = i32(g.tokens!);
      const [B, T] = g.tokens!.shape as [number, number];
      const rows = Array.from({ length: B }, (_, b) => Array.from(tokens.subarray(b * T, (b + 1) * T)));
      const m = await loadModel(path.join(fixtures, 'models', name));
      const r = await m.logprobs(rows);
      const ref = f64(g.logp!);
      // float32 forward vs float64 reference, logits of magnitude 5-7 (see test_golden.cpp):
      // measured at most 1.7e-6 (qwen2-tiny) through the addon, the same as the C++ test;
      // 2e-5 keeps a 12x margin, while a wrong layer moves log-probabilities by O(1).
      let err = 0;
      for (let i = 0; i < ref.length; i++) err = Math.max(err, Math.abs(r.logp[i]! - ref[i]!));
      expect(r.logp.length).toBe(ref.length);
      expect(err).toBeLessThan(2e-5);
      m.dispose();
    });
  }
});

describe('save and load', () => {
  for (const arch of ['gpt2', 'llama', 'qwen2'] as const) {
    it(`${arch}: a saved model loads back bit-identically and scores the same`, async () => {
      const m = await initModel({ arch, preset: 'tiny' }, { seed: 7 });
      await m.sftStep({ tokens: [[1, 2, 3, 4, 5]] });
      await m.optimizerStep({ lr: 1e-2 });
      const dir = path.join(tmp, `save-${arch}`);
      await m.save(dir);
      const m2 = await loadModel(dir);
      const [a, b] = [await m.getParams(), await m2.getParams()];
      expect(Buffer.from(b.buffer).equals(Buffer.from(a.buffer))).toBe(true);
      const toks = [[5, 4, 3, 2, 1, 0], [9, 8]];
      expect((await m2.logprobs(toks)).rows()).toEqual((await m.logprobs(toks)).rows());
      const cfg = JSON.parse(readFileSync(path.join(dir, 'config.json'), 'utf8'));
      expect(cfg.model_type).toBe(arch);
      m.dispose();
      m2.dispose();
    });
  }
});

describe('training API', () => {
  it('sftStep + optimizerStep lowers the loss; a frozen clone cannot train and does not move', async () => {
    const m = await initModel({ arch: 'llama', preset: 'tiny' }, { seed: 1 });
    const ref = await m.clone();
    expect(ref.trainable).toBe(false);
    const tokens = [[3, 1, 4, 1, 5, 9, 2, 6], [2, 7, 1, 8]];
    const before = (await ref.logprobs(tokens)).rows();
    let first = 0, last = 0;
    for (let i = 0; i < 30; i++) {
      const s = await m.sftStep({ tokens });
      const o = await m.optimizerStep({ lr: 3e-3, maxGradNorm: 1 });
      expect(o.step).toBe(i + 1);
      if (i === 0) first = s.loss;
      last = s.loss;
    }
    expect(last).toBeLessThan(first * 0.5);
    await expect(ref.sftStep({ tokens })).rejects.toMatchObject({ code: 'ERR_SCORE_INVALID_ARGUMENT', message: expect.stringContaining('frozen') });
    expect((await ref.logprobs(tokens)).rows()).toEqual(before);
    m.dispose();
    ref.dispose();
  });

  it('optimizer state moves to another model: both then take bit-identical steps', async () => {
    const a = await initModel({ arch: 'gpt2', preset: 'tiny' }, { seed: 4 });
    const tokens = [[5, 6, 7, 8, 9], [9, 8, 7]];
    for (let i = 0; i < 3; i++) {
      await a.sftStep({ tokens });
      await a.optimizerStep({ lr: 1e-3 });
    }
    const b = await initModel({ arch: 'gpt2', preset: 'tiny' }, { seed: 99 });
    const fresh = await b.getOptimizerState();
    expect(fresh.step).toBe(0);
    expect(fresh.m.some((x) => x !== 0)).toBe(false);
    const st = await a.getOptimizerState();
    expect(st.step).toBe(3);
    await b.setParams(await a.getParams());
    await b.setOptimizerState(st);
    for (const m of [a, b]) {
      await m.sftStep({ tokens });
      expect((await m.optimizerStep({ lr: 1e-3 })).step).toBe(4);
    }
    // without the moments the 4th step would differ (Adam's update depends on m, v and t)
    const [pa, pb] = [await a.getParams(), await b.getParams()];
    expect(Buffer.compare(Buffer.from(pa.buffer), Buffer.from(pb.buffer))).toBe(0); // (toEqual on 3.5M floats is slow)
    await expect(b.setOptimizerState({ m: st.m.subarray(1), v: st.v, step: 1 })).rejects.toMatchObject({ code: 'ERR_SCORE_INVALID_ARGUMENT' });
    const frozen = await a.clone();
    await expect(frozen.getOptimizerState()).rejects.toMatchObject({ message: expect.stringContaining('frozen') });
    for (const m of [a, b, frozen]) m.dispose();
  });

  it('a mask weights target tokens: masking everything but one token trains only that one', async () => {
    const m = await initModel({ arch: 'gpt2', preset: 'tiny' }, { seed: 2 });
    const tokens = [[10, 20, 30, 40]];
    const r = await m.sftStep({ tokens, mask: [[0, 0, 1]] });
    const lp = (await m.logprobs(tokens)).rows()[0]!;
    expect(r.loss).toBeCloseTo(-lp[2]!, 4);
    expect(r.tokens).toBe(3);
    await expect(m.sftStep({ tokens, mask: [[1, 1]] })).rejects.toMatchObject({ code: 'ERR_SCORE_INVALID_ARGUMENT', message: expect.stringContaining('mask[0]') });
    m.dispose();
  });

  it('concurrent calls are queued and all complete in order', async () => {
    const m = await initModel({ arch: 'qwen2', preset: 'tiny' }, { seed: 3 });
    const tokens = [[1, 2, 3, 4]];
    const before = (await m.logprobs(tokens)).rows();
    const [a, , , b] = await Promise.all([m.logprobs(tokens), m.sftStep({ tokens }), m.optimizerStep({ lr: 1e-2 }), m.logprobs(tokens)]);
    expect(a.rows()).toEqual(before);
    expect(b.rows()).not.toEqual(before);
    m.dispose();
  });

  it('dispose: later calls reject with ERR_SCORE_DISPOSED; a call in flight still settles', async () => {
    const m = await initModel({ arch: 'gpt2', preset: 'tiny' }, { seed: 4 });
    const inflight = m.logprobs([[1, 2, 3]]);
    m.dispose();
    await expect(inflight).rejects.toBeInstanceOf(ScoreError);
    await expect(m.logprobs([[1, 2, 3]])).rejects.toMatchObject({ code: 'ERR_SCORE_DISPOSED' });
    expect(() => m.memoryBytes()).toThrow(/disposed/);
  });

  it('bad batches reject with a message naming the value', async () => {
    const m = await initModel({ arch: 'gpt2', preset: 'tiny' }, { seed: 5 });
    await expect(m.logprobs([[1, 512]])).rejects.toMatchObject({ code: 'ERR_SCORE_INVALID_ARGUMENT', message: expect.stringContaining('tokens[0][1] = 512 is outside the vocabulary') });
    await expect(m.logprobs([[1, 2.5]])).rejects.toMatchObject({ message: expect.stringContaining('tokens[0][1] = 2.5') });
    await expect(m.logprobs([])).rejects.toMatchObject({ message: expect.stringContaining('empty') });
    await expect(m.logprobs([Array(1025).fill(1)])).rejects.toMatchObject({ message: expect.stringContaining('exceeds the model') });
    await expect(m.logprobs([[1]])).rejects.toMatchObject({ message: expect.stringContaining('at least 2 tokens') });
    await expect(m.optimizerStep({ lr: -1 })).rejects.toMatchObject({ message: expect.stringContaining('lr') });
    await expect(initModel({ arch: 'gpt2', preset: 'huge' })).rejects.toMatchObject({ message: expect.stringContaining("unknown preset 'huge'") });
    await expect(loadModel(path.join(fixtures, 'models', 'gpt2-tiny'), { device: 'cuda' })).rejects.toMatchObject({ code: 'ERR_SCORE_DEVICE' });
    m.dispose();
  });
});

describe('the event loop keeps turning during native work', () => {
  it('timers fire while a long logprobs call runs on a worker thread', async () => {
    const m = await initModel({ arch: 'gpt2', preset: 'small' }, { seed: 1 });
    const tokens = Array.from({ length: 8 }, (_, b) => Array.from({ length: 256 }, (_, t) => (b * 31 + t * 7) % 8192));
    let ticks = 0, maxGap = 0, last = performance.now();
    const timer = setInterval(() => {
      const now = performance.now();
      maxGap = Math.max(maxGap, now - last);
      last = now;
      ticks++;
    }, 5);
    const t0 = performance.now();
    await m.logprobs(tokens);
    await m.sftStep({ tokens });
    const elapsed = performance.now() - t0;
    clearInterval(timer);
    m.dispose();
    // The native calls take hundreds of ms; the JS thread stays free, so the 5 ms timer
    // keeps firing (a blocked thread would give ~0 ticks and one gap the size of the call).
    expect(elapsed).toBeGreaterThan(100);
    expect(ticks).toBeGreaterThan(elapsed / 5 / 4);
    expect(maxGap).toBeLessThan(Math.max(100, elapsed / 4));
  });
});

describe('benchGemm (score-rl bench gemm)', () => {
  it('times sgemm in the three forms and checks it against a double reference', async () => {
    const { addon } = await import('../../lib/native/addon.js');
    for (const form of ['nn', 'nt', 'tn'] as const) {
      const r = await addon().benchGemm({ M: 37, N: 53, K: 71, form, reps: 2, warmup: 0 });
      expect(r.ms).toHaveLength(2);
      expect(r.maxRelErr).toBeLessThan(1e-5); // float32 products of 71 terms in [-1, 1)
    }
    await expect(addon().benchGemm({ M: 4, N: 4, K: 4, form: 'xx' as never })).rejects.toMatchObject({ code: 'ERR_SCORE_INVALID_ARGUMENT' });
  });
});
