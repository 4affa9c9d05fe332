// Drill: API misuse from JavaScript. Every case gives a typed error (ScoreError with a
// stable code and a one-line message) or is serialised; none crashes the process.
import { spawnSync } from 'node:child_process';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { addon } from '../../lib/native/addon.js';
import type { Model } from '../../lib/model/model.js';
import { ScoreError } from '../../lib/model/errors.js';
import { packTokens } from '../../lib/model/batch.js';
import { tinyModel } from '../rl/tiny.js';

const tiny = () => tinyModel(9);
const tokens = [[1, 2, 3, 4, 5]];
const rl = { tokens, mask: [[1, 1, 1, 1]], wPg: [[1, 1, 1, 1]], advantages: [[1, -1, 1, -1]] };

type Case = [string, (m: Model) => Promise<unknown>];
const CASES: Case[] = [
  ['logprobs of a string', (m) => m.logprobs('hello' as never)],
  ['logprobs of null', (m) => m.logprobs(null as never)],
  ['logprobs row of strings', (m) => m.logprobs([['1', '2'] as never])],
  ['negative token id', (m) => m.logprobs([[1, -3]])],
  ['token id NaN', (m) => m.logprobs([[1, NaN]])],
  ['sftStep mask of the wrong length', (m) => m.sftStep({ tokens, mask: [[1, 1]] })],
  ['sftStep mask with NaN', (m) => m.sftStep({ tokens, mask: [[1, NaN, 1, 1]] })],
  ['sftStep norm 0', (m) => m.sftStep({ tokens, norm: 0 })],
  ['rlStep advantages of the wrong length', (m) => m.rlStep({ ...rl, advantages: [[1]] })],
  ['rlStep kl estimator unknown', (m) => m.rlStep({ ...rl, kl: 'k2' as never })],
  ['rlStep with the policy as its own reference', (m) => m.rlStep({ ...rl, reference: m })],
  ['rlStep micro-batch budget 0', (m) => m.rlStep({ ...rl, microBatchTokens: 0 })],
  ['optimizerStep lr NaN', (m) => m.optimizerStep({ lr: NaN })],
  ['optimizerStep without options', (m) => m.optimizerStep(undefined as never)],
  ['generate with n = 0', (m) => m.generate([[1, 2]], { n: 0 })],
  ['generate with temperature -1', (m) => m.generate([[1, 2]], { temperature: -1 })],
  ['generate with top-p 2', (m) => m.generate([[1, 2]], { topP: 2 })],
  ['generate with 0 new tokens', (m) => m.generate([[1, 2]], { maxNewTokens: 0 })],
  ['generate with an empty prompt', (m) => m.generate([[]])],
  ['generate with a stop sequence of strings', (m) => m.generate([[1, 2]], { stop: [['a'] as never] })],
  ['setParams of the wrong length', (m) => m.setParams(new Float32Array(3))],
  ['setParams of a Float64Array', (m) => m.setParams(new Float64Array(3) as never)],
  ['setOptimizerState of nothing', (m) => m.setOptimizerState(null as never)],
  ['save to an empty path', (m) => m.save('')],
  ['save into a file', (m) => m.save('/etc/hostname/x')],
];

describe('drill: API misuse', () => {
  it.each(CASES)('%s: a typed error', async (_, call) => {
    const m = await tiny();
    const p = (async () => call(m))();
    await expect(p).rejects.toBeInstanceOf(ScoreError);
    await p.catch((e: ScoreError) => {
      expect(e.code).toMatch(/^ERR_SCORE_[A-Z_]+$/);
      expect(e.message.split('\n')).toHaveLength(1);
    });
    // the model is unharmed
    expect((await m.logprobs(tokens)).rows()[0]!.length).toBe(4);
    m.dispose();
  });

  it('every method after dispose(): ERR_SCORE_DISPOSED', async () => {
    const m = await tiny();
    m.dispose();
    m.dispose(); // twice is fine
    for (const call of [() => m.logprobs(tokens), () => m.sftStep({ tokens }), () => m.rlStep(rl), () => m.optimizerStep({ lr: 1 }), () => m.generate([[1]]),
      () => m.save('/tmp/x'), () => m.clone(), () => m.getParams(), () => m.setParams(new Float32Array(1)), () => m.getOptimizerState()])
      await expect(call()).rejects.toMatchObject({ code: 'ERR_SCORE_DISPOSED' });
  });

  it('two rlStep calls at once, and generate during a training step: serialised, same result as one after the other', async () => {
    const [a, b] = [await tiny(), await tiny()];
    const [s1, s2] = await Promise.all([a.rlStep(rl), a.rlStep(rl)]);
    await b.rlStep(rl);
    await b.rlStep(rl);
    expect(s1.loss).toBe(s2.loss);
    const [, g] = await Promise.all([a.optimizerStep({ lr: 1e-2 }), a.generate([[1, 2]], { temperature: 0, maxNewTokens: 4 }), a.sftStep({ tokens })]);
    await b.optimizerStep({ lr: 1e-2 });
    const g2 = await b.generate([[1, 2]], { temperature: 0, maxNewTokens: 4 });
    expect(g.sequences[0]!.tokens).toEqual(g2.sequences[0]!.tokens);
    a.dispose();
    b.dispose();
  });

  it('without the queue (the raw addon), a second call on a busy model is ERR_SCORE_BUSY', async () => {
    const native = await addon().initModel(JSON.stringify({ architectures: ['GPT2LMHeadModel'], model_type: 'gpt2', vocab_size: 512, n_positions: 1024, n_embd: 256, n_layer: 4, n_head: 4, layer_norm_epsilon: 1e-5, activation_function: 'gelu_new' }), 1, { device: 'cpu' });
    const batch = packTokens(Array.from({ length: 4 }, () => Array(64).fill(7)));
    const first = native.logprobs(batch);
    expect(() => native.logprobs(batch)).toThrow(expect.objectContaining({ code: 'ERR_SCORE_BUSY' }));
    await first;
    native.dispose();
  });

  it('a model disposed while calls are in flight, many times over, in a child process: no crash', () => {
    const script = `
      import { initModel } from ${JSON.stringify(join(resolve(__dirname, '..', '..'), 'dist', 'index.js'))};
      for (let i = 0; i < 20; i++) {
        const m = await initModel({ arch: 'llama', preset: 'tiny' }, { seed: i });
        const ac = new AbortController();
        const calls = [m.generate([[1, 2, 3]], { n: 8, maxNewTokens: 16, signal: ac.signal }), m.sftStep({ tokens: [[1, 2, 3, 4]] }), m.logprobs([[1, 2, 3]]), m.clone()];
        const all = Promise.allSettled(calls); // handlers attached at once (no unhandled rejection)
        if (i % 3 === 0) ac.abort();
        await new Promise((r) => setTimeout(r, i % 5));
        m.dispose();
        const settled = await all;
        for (const s of settled) if (s.status === 'rejected' && !String(s.reason?.code).startsWith('ERR_SCORE_')) throw s.reason;
        for (const s of settled) if (s.status === 'fulfilled' && s.value?.dispose) s.value.dispose();
      }
      console.log('ok');`;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toBe('ok');
    expect(r.status).toBe(0);
  });
});
