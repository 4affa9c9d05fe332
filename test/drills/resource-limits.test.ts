// Drill: resource limits. A model or batch too large for memory fails before allocating,
// with the estimate; a disk that fills up during a checkpoint leaves the previous one
// intact and named.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { initModel, loadModel } from '../../lib/model/model.js';

const root = resolve(__dirname, '..', '..');
const dir = mkdtempSync(join(tmpdir(), 'score-drill-limits-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
afterEach(() => {
  delete process.env.SCORE_MEMORY_LIMIT;
});

describe('drill: memory', () => {
  it('a model too large for this machine: refused before allocating, with the estimate', async () => {
    // 12 x 16384^2 x 40 layers: about 129 billion parameters, 966 GiB for weights + copy
    const cfg = { architectures: ['GPT2LMHeadModel'], model_type: 'gpt2', vocab_size: 50257, n_positions: 1024, n_embd: 16384, n_layer: 40, n_head: 128, layer_norm_epsilon: 1e-5, activation_function: 'gelu_new' };
    await expect(initModel(cfg)).rejects.toMatchObject({ code: 'ERR_SCORE_OUT_OF_MEMORY', message: expect.stringMatching(/^a model of \d+ parameters needs about [\d.]+ [GT]iB, but only .* is available$/) });
  });

  it('a batch too large: refused with the estimate; the model stays usable', async () => {
    const m = await initModel({ arch: 'gpt2', preset: 'tiny' });
    process.env.SCORE_MEMORY_LIMIT = '64M'; // as if the machine had 64 MiB left
    await expect(m.logprobs(Array.from({ length: 64 }, () => Array(1024).fill(5)))).rejects.toMatchObject({
      code: 'ERR_SCORE_OUT_OF_MEMORY', message: expect.stringMatching(/^a batch of 64 x 1024 tokens needs about [\d.]+ GiB, but only 64 MiB is available$/),
    });
    await expect(m.sftStep({ tokens: Array.from({ length: 8 }, () => Array(512).fill(5)) })).rejects.toMatchObject({
      code: 'ERR_SCORE_OUT_OF_MEMORY', message: expect.stringContaining('(forward + backward) needs about'),
    });
    await expect(m.generate([[1, 2, 3]], { n: 64, maxNewTokens: 900, memoryBudget: 1 << 20 })).rejects.toMatchObject({ code: 'ERR_SCORE_OUT_OF_MEMORY' });
    // without a budget, the KV cache is held against the memory there is: 4096 x 1024
    // positions x 4 layers x 2 x 256 floats is 32 GiB
    await expect(m.generate([[1, 2, 3]], { n: 4096, maxNewTokens: 1000 })).rejects.toMatchObject({
      code: 'ERR_SCORE_OUT_OF_MEMORY', message: expect.stringMatching(/^generate: the KV cache for 4096 sequences of 1003 positions needs about [\d.]+ GiB, but only 64 MiB is available$/),
    });
    delete process.env.SCORE_MEMORY_LIMIT;
    expect((await m.logprobs([[1, 2, 3]])).rows()[0]!.length).toBe(2);
    expect(m.memoryBytes()).toBeLessThan(64 << 20); // nothing was allocated for the refused batches
    m.dispose();
  });
});

describe('drill: disk full during a checkpoint', () => {
  it('the write fails with a clear error; the previous checkpoint stays named, complete and loadable', async () => {
    const out = join(dir, 'run');
    const script = join(dir, 'ckpt.mjs');
    writeFileSync(
      script,
      `import { initModel } from ${JSON.stringify(join(root, 'dist', 'index.js'))};
import { saveCheckpoint } from ${JSON.stringify(join(root, 'dist', 'rl', 'checkpoint.js'))};
const m = await initModel({ arch: 'gpt2', preset: 'tiny' }, { seed: Number(process.argv[2]) });
try {
  await saveCheckpoint(${JSON.stringify(out)}, m, { step: Number(process.argv[2]), dataPosition: 0, seed: 0, rng: 'derived from seed and step' });
  console.log('saved');
} catch (e) { console.log(e.code + ': ' + e.message); process.exitCode = 1; }`,
    );
    expect(spawnSync(process.execPath, [script, '1'], { encoding: 'utf8' }).stdout.trim()).toBe('saved');
    // the second checkpoint under a 1 MiB file-size limit (SIGXFSZ ignored, so writes fail with EFBIG as on a full disk)
    const r = spawnSync('bash', ['-c', `ulimit -f 1024; trap '' XFSZ; exec "${process.execPath}" "${script}" 2`], { encoding: 'utf8' });
    expect(r.status).toBe(1);
    expect(r.stdout.trim()).toMatch(/^ERR_SCORE_IO: checkpoint of step 2 not written \(.*\); the last complete one is step-000001$/);
    const ck = join(out, 'checkpoints');
    expect(JSON.parse(readFileSync(join(ck, 'latest.json'), 'utf8')).step).toBe(1);
    expect(readdirSync(ck).sort()).toEqual(['latest.json', 'step-000001']); // no half-written folder left
    const m = await loadModel(join(ck, 'step-000001'));
    const fresh = await initModel({ arch: 'gpt2', preset: 'tiny' }, { seed: 1 });
    expect(Buffer.compare(Buffer.from((await m.getParams()).buffer), Buffer.from((await fresh.getParams()).buffer))).toBe(0);
    m.dispose();
    fresh.dispose();
    expect(existsSync(join(ck, 'step-000001', 'optimizer.safetensors'))).toBe(true);
  });
});
