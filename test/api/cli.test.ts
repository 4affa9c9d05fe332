// The CLI as a user runs it: real processes, exit codes, one-line errors.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadModel } from '../../lib/index.js';
import { asciiTokenizer, writeAsciiModel } from '../rl/tiny.js';

const root = path.resolve(__dirname, '..', '..');
// The CLI runs from dist/; `npm test` compiles it first (the pretest script).
const bin = path.join(root, 'dist', 'cli', 'main.js');
const tmp = mkdtempSync(path.join(os.tmpdir(), 'score-cli-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function cli(...args: string[]) {
  const r = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8' });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('score-rl CLI', () => {
  it('--help lists the commands', () => {
    const r = cli('--help');
    expect(r.code).toBe(0);
    for (const c of ['init', 'logprobs', 'bench']) expect(r.stdout).toContain(c);
  });

  it('init + logprobs give the same numbers as the API', async () => {
    const dir = path.join(tmp, 'q');
    const r = cli('init', '--arch', 'qwen2', '--preset', 'tiny', '--out', dir, '--seed', '3');
    expect(r.code).toBe(0);
    const input = path.join(tmp, 'in.json');
    const tokens = [[1, 2, 3, 4], [7, 8]];
    writeFileSync(input, JSON.stringify({ tokens }));
    const out = cli('logprobs', '--model', dir, '--input', input);
    expect(out.code).toBe(0);
    const got = JSON.parse(out.stdout) as { logprobs: number[][] };
    const m = await loadModel(dir);
    expect(got.logprobs).toEqual((await m.logprobs(tokens)).rows());
    expect(got.logprobs.map((r) => r.length)).toEqual([3, 1]);
    m.dispose();
    // init refuses to overwrite a non-empty folder
    expect(cli('init', '--out', dir).code).not.toBe(0);
  });

  it('sample: token ids without a tokenizer, text with one; the same as Model.generate', async () => {
    const ids = path.join(tmp, 'sample-ids');
    expect(cli('init', '--arch', 'llama', '--preset', 'tiny', '--out', ids, '--seed', '4').code).toBe(0);
    const r = cli('sample', '--model', ids, '--prompt', '5 6 7', '--n', '2', '--max-new-tokens', '6', '--seed', '9', '--json');
    expect(r.code).toBe(0);
    const got = JSON.parse(r.stdout) as { sequences: { prompt: number; sample: number; tokens: number[]; finish: string }[] };
    const m = await loadModel(ids);
    const want = await m.generate([[5, 6, 7]], { n: 2, maxNewTokens: 6, seed: 9 });
    m.dispose();
    expect(got.sequences.map((s) => s.tokens)).toEqual(want.sequences.map((s) => s.tokens));
    expect(cli('sample', '--model', ids, '--prompt', 'hello').stderr).toMatch(/no tokenizer\.json, so a prompt is space-separated token ids/);

    const text = path.join(tmp, 'sample-text');
    await writeAsciiModel(text, { positions: 64, embd: 32, layers: 1, seed: 2 });
    const t = cli('sample', '--model', text, '--prompt', 'Q: 2+2=', '--temperature', '0', '--max-new-tokens', '5', '--json');
    expect(t.code).toBe(0);
    const seq = (JSON.parse(t.stdout) as { sequences: { tokens: number[]; text: string }[] }).sequences[0]!;
    const tok = asciiTokenizer();
    expect(seq.text).toBe(tok.decode(seq.tokens, { skipSpecialTokens: true }));
    const mt = await loadModel(text);
    const greedy = await mt.generate([tok.encode('Q: 2+2=')], { temperature: 0, maxNewTokens: 5, eosId: tok.eosTokenId ?? null });
    mt.dispose();
    expect(seq.tokens).toEqual(greedy.sequences[0]!.tokens);
    const input = path.join(tmp, 'prompts.json');
    writeFileSync(input, JSON.stringify({ prompts: ['ab', 7] }));
    const bad = cli('sample', '--model', text, '--input', input);
    expect(bad.code).toBe(2);
    expect(bad.stderr.trim().split('\n')).toHaveLength(1);
    expect(bad.stderr).toContain('prompts[1] must be a non-empty string or an array of token ids');
    expect(cli('sample', '--model', text, '--prompt', 'x', '--chat').stderr).toContain('no chat template');
  });

  it('bad input: one line on stderr, non-zero exit', () => {
    const input = path.join(tmp, 'bad.json');
    writeFileSync(input, JSON.stringify({ tokens: [[1, 'x']] }));
    const cases = [
      cli('logprobs', '--model', path.join(root, 'test/fixtures/models/gpt2-tiny'), '--input', input),
      cli('logprobs', '--model', path.join(tmp, 'missing'), '--input', input),
      cli('init', '--arch', 'rwkv', '--out', path.join(tmp, 'x')),
      cli('init', '--preset'),
      cli('bench', 'nope'),
      cli('frobnicate'),
    ];
    for (const r of cases) {
      expect(r.code).not.toBe(0);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).toMatch(/^score-rl: error: /);
    }
    expect(cases[0]!.stderr).toContain('tokens[0][1]');
  });

  it('bench train|logprobs --json: one JSON object with the fields of the design (tiny, no PyTorch peer)', () => {
    for (const suite of ['train', 'logprobs']) {
      const r = cli('bench', suite, '--preset', 'tiny', '--arch', 'llama', '--steps', '2', '--warmup', '1', '--no-torch', '--json');
      expect(r.code, r.stderr).toBe(0);
      const j = JSON.parse(r.stdout) as Record<string, unknown>;
      expect(j).toMatchObject({ suite, preset: 'tiny', arch: 'llama', backend: 'cpu', B: 16, T: 128 });
      for (const k of ['tokens_per_s', 'median_ms', 'peak_rss_mb']) expect(j[k] as number).toBeGreaterThan(0);
      expect(j.tokens_per_s as number).toBeCloseTo((16 * 128) / ((j.median_ms as number) / 1e3), 6);
    }
  });

  it('the README example (examples/embed.mjs) runs', () => {
    const r = spawnSync(process.execPath, [path.join(root, 'examples', 'embed.mjs')], { encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('rl step');
  });

  it('inspect: CPU features, threads, and the CUDA library and device or why not', async () => {
    const r = cli('inspect', '--json');
    expect(r.code).toBe(0);
    const j = JSON.parse(r.stdout) as { cpuFeatures: string[]; ompThreads: number; cudaDevice: { ok: boolean; detail: string } };
    expect(j.ompThreads).toBeGreaterThan(0);
    expect(Array.isArray(j.cpuFeatures)).toBe(true);
    expect(j.cudaDevice.detail.length).toBeGreaterThan(0);
    const { addon } = await import('../../lib/native/addon.js');
    const d = await addon().describeCuda({ device: 'cuda', cudaLibrary: '/nonexistent/libscore_cuda.so' });
    expect(d).toMatchObject({ ok: false, text: expect.stringContaining('cannot load /nonexistent/libscore_cuda.so') });
  });
});
