// `score-rl train` and `score-rl eval` as a user runs them: a tiny checkpoint with a
// character tokenizer, GSM8K records (test/fixtures/data), real processes.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeAsciiModel } from './tiny.js';
import { readJsonl } from '../../lib/rl/files.js';

const root = resolve(__dirname, '..', '..');
const bin = join(root, 'dist', 'cli', 'main.js');
const data = join(root, 'test', 'fixtures', 'data', 'gsm8k', 'test.jsonl');
const tmp = mkdtempSync(join(tmpdir(), 'score-train-cli-'));
const modelDir = join(tmp, 'model');
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function cli(...args: string[]) {
  const r = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', env: { ...process.env, OMP_NUM_THREADS: '1' } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

beforeAll(async () => {
  await writeAsciiModel(modelDir, { positions: 2048, embd: 32, layers: 1, seed: 1 });
});

describe('score-rl train / eval', () => {
  const small = ['--k', '2', '--prompts-per-step', '2', '--max-new-tokens', '6', '--eval-limit', '4', '--checkpoint-every', '1'];

  it('trains a few steps into a run folder; the same folder is refused without --resume; the checkpoint evaluates', () => {
    const out = join(tmp, 'run');
    const r = cli('train', '--model', modelDir, '--task', 'math', '--data', data, '--eval-data', data, '--out', out, '--stage1-steps', '1', '--stage2-steps', '1', ...small);
    expect(r.stderr).toContain('done: 2 steps');
    expect(r.code).toBe(0);
    expect(readJsonl(join(out, 'metrics.jsonl')).length).toBe(2);
    const run = JSON.parse(readFileSync(join(out, 'run.json'), 'utf8'));
    expect(run.config.lr).toBe(5e-6); // the paper's math default
    expect(run.config.instruction).toMatch(/^There might be an error in the solution above/);
    const latest = JSON.parse(readFileSync(join(out, 'checkpoints', 'latest.json'), 'utf8'));
    // a checkpoint is a complete Hugging Face folder, tokenizer included
    for (const f of ['config.json', 'model.safetensors', 'tokenizer.json', 'optimizer.safetensors']) expect(existsSync(join(out, 'checkpoints', latest.dir, f)), f).toBe(true);
    // the same folder again: refused without --resume; with it, nothing left to do
    expect(cli('train', '--model', modelDir, '--task', 'math', '--data', data, '--out', out).stderr).toMatch(/holds a run already/);
    const again = cli('train', '--out', out, '--resume');
    expect(again.code).toBe(0);
    expect(readJsonl(join(out, 'metrics.jsonl')).length).toBe(2);
    // the saved checkpoint evaluates with `score-rl eval`
    const ev = cli('eval', '--model', join(out, 'checkpoints', latest.dir), '--task', 'math', '--data', data, '--limit', '5', '--max-new-tokens', '6', '--json');
    expect(ev.code).toBe(0);
    const j = JSON.parse(ev.stdout.trim().split('\n').pop()!);
    expect(j.n).toBe(5);
    expect(j.acc_t2 - j.acc_t1).toBeCloseTo(j.delta, 12);
    const sc = cli('eval', '--model', modelDir, '--task', 'math', '--data', data, '--limit', '2', '--max-new-tokens', '4', '--scaling', '2,4', '--json');
    expect(JSON.parse(sc.stdout.trim().split('\n').pop()!).scaling.map((p: { k: number }) => p.k)).toEqual([2, 4]);
    expect(cli('eval', '--model', modelDir, '--task', 'math', '--data', data, '--scaling', '3').stderr).toContain('even integers >= 2, got 3');
  }, 120_000);

  it('config errors name the key and the file; flags are checked too', () => {
    const cfg = join(tmp, 'bad.json');
    writeFileSync(cfg, JSON.stringify({ alpha: 10, stageOneSteps: 3 }));
    const base = ['train', '--model', modelDir, '--task', 'math', '--data', data, '--out', join(tmp, 'never')];
    let r = cli(...base, '--config', cfg);
    expect(r.code).toBe(2);
    expect(r.stderr.trim()).toBe(`score-rl: error: ${cfg}: unknown key 'stageOneSteps'`);
    writeFileSync(cfg, JSON.stringify({ k: 1 }));
    expect(cli(...base, '--config', cfg).stderr).toContain(`${cfg}: key 'k' must be >= 2, got 1`);
    writeFileSync(cfg, JSON.stringify({ kl: 'k2' }));
    expect(cli(...base, '--config', cfg).stderr).toContain(`key 'kl' must be one of k1, k3`);
    writeFileSync(cfg, JSON.stringify({ singleTurn: 'yes' }));
    expect(cli(...base, '--config', cfg).stderr).toContain(`key 'singleTurn' must be true or false`);
    expect(cli(...base, '--prompts-per-step', '2.5').stderr).toContain(`flags: key 'promptsPerStep' must be an integer, got 2.5`);
    expect(cli(...base, '--task', 'poetry').stderr).toContain(`'--task': 'poetry' is not one of math, code`);
    expect(existsSync(join(tmp, 'never'))).toBe(false);
  });

  it('Ctrl-C: stops after the step in progress, writes a checkpoint, exits 130', async () => {
    const out = join(tmp, 'interrupted');
    const child = spawn(process.execPath, [bin, 'train', '--model', modelDir, '--task', 'math', '--data', data, '--out', out, '--stage1-steps', '0', '--stage2-steps', '200', '--k', '2', '--prompts-per-step', '2', '--max-new-tokens', '6', '--checkpoint-every', '0'], {
      env: { ...process.env, OMP_NUM_THREADS: '1' },
    });
    let err = '';
    child.stderr.on('data', (d: Buffer) => {
      err += d.toString();
      if (/step 2\/200/.test(err) && !child.killed) child.kill('SIGINT');
    });
    const code = await new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
    expect(err).toContain('stopping after this step and writing a checkpoint');
    expect(code).toBe(130);
    const latest = JSON.parse(readFileSync(join(out, 'checkpoints', 'latest.json'), 'utf8'));
    expect(err).toContain(`stopped at step ${latest.step}; checkpoint written`);
    expect(readJsonl(join(out, 'metrics.jsonl')).length).toBe(latest.step);
    expect(latest.step).toBeGreaterThanOrEqual(2);
    expect(latest.step).toBeLessThan(200);
  }, 60_000);
});
