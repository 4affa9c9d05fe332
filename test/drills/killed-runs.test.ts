// Drill: kill -9 a training run at random moments (during a step, a checkpoint write, a
// metrics append), many times. After every kill the latest checkpoint is complete and
// loads; `--resume` goes on; the final metrics equal those of an uninterrupted run.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadModel } from '../../lib/model/model.js';
import { writeAsciiModel } from '../rl/tiny.js';
import { readJsonl } from '../../lib/rl/files.js';
import type { StepMetrics } from '../../lib/rl/trainer.js';
import { mulberry32 } from '../../lib/rl/random.js';

const root = resolve(__dirname, '..', '..');
const bin = join(root, 'dist', 'cli', 'main.js');
const tmp = mkdtempSync(join(tmpdir(), 'score-drill-kill-'));
const modelDir = join(tmp, 'model');
const data = join(tmp, 'data.jsonl');
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const env = { ...process.env, OMP_NUM_THREADS: '1' };

beforeAll(async () => {
  await writeAsciiModel(modelDir, { positions: 1024, embd: 64, layers: 2, seed: 2 });
  // 16 short GSM8K-style problems (short prompts keep the drill fast)
  const lines = Array.from({ length: 16 }, (_, i) => JSON.stringify({ question: `What is ${i} plus ${i + 1}?`, answer: `${i}+${i + 1}=${2 * i + 1}\n#### ${2 * i + 1}` }));
  writeFileSync(data, lines.join('\n') + '\n');
});

const args = (out: string) => [bin, 'train', '--model', modelDir, '--task', 'math', '--prompt', 'plain', '--data', data, '--eval-data', data, '--out', out,
  '--stage1-steps', '6', '--stage2-steps', '6', '--k', '2', '--prompts-per-step', '4', '--max-new-tokens', '24', '--lr', '1e-3',
  '--checkpoint-every', '1', '--eval-every', '4', '--eval-limit', '4', '--seed', '3'];
const timeless = (ms: StepMetrics[]) => ms.map(({ time_s, tokens_per_s, ...m }) => (void time_s, void tokens_per_s, m));

describe('drill: killed runs', () => {
  it('kill -9 at random moments; every time the latest checkpoint loads and --resume finishes with identical metrics', async () => {
    const whole = join(tmp, 'whole');
    const w = spawnSync(process.execPath, args(whole), { env, encoding: 'utf8' });
    if (w.status !== 0) console.log(w.stderr);
    expect(w.status, w.stderr).toBe(0);
    const expected = readJsonl<StepMetrics>(join(whole, 'metrics.jsonl'));
    expect(expected.length).toBe(12);
    // A process's first step also pays its warm-up (activation buffers allocated and faulted
    // in: ~0.7 s here, against ~0.12 s for a later step), and every resumed process pays it.
    const [firstMs, ...laterMs] = expected.map((m) => m.time_s * 1000);
    const stepMs = laterMs.reduce((s, t) => s + t, 0) / laterMs.length;

    const out = join(tmp, 'killed');
    const latestFile = join(out, 'checkpoints', 'latest.json');
    const checkpointStep = () => {
      try {
        return (JSON.parse(readFileSync(latestFile, 'utf8')) as { step: number }).step;
      } catch {
        return 0;  // none yet (or being replaced)
      }
    };
    const rand = mulberry32(12345);
    let kills = 0, finished = false, attempts = 0;
    const seenSteps: number[] = [];
    while (!finished && attempts < 40) {
      attempts++;
      const resume = existsSync(join(out, 'run.json'));
      const start = checkpointStep();
      const child = spawn(process.execPath, resume ? [bin, 'train', '--out', out, '--resume'] : args(out), { env, stdio: 'ignore' });
      // Kill at a random moment, paced by the run's own progress rather than by durations
      // measured earlier (the machine's speed changes while the suite runs): during start-up
      // and the first step, or a random part of a step after 1-2 more checkpoints. Until five
      // kills have landed at most one checkpoint more per attempt, so the run cannot finish
      // first; after that it may.
      const target = Math.floor(rand() * (kills < 5 ? 2 : 3));
      const extra = target === 0 ? 250 + rand() * (300 + firstMs) : rand() * stepMs;
      let timer: NodeJS.Timeout | undefined;
      const poll = setInterval(() => {
        if (checkpointStep() < start + target) return;
        clearInterval(poll);
        timer = setTimeout(() => child.kill('SIGKILL'), extra);
      }, 10);
      const code = await new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
      clearInterval(poll);
      clearTimeout(timer);
      if (code === 0) finished = true;
      else {
        kills++;
        // whatever the kill interrupted, the named checkpoint is complete and loads
        if (existsSync(latestFile)) {
          const latest = JSON.parse(readFileSync(latestFile, 'utf8')) as { step: number; dir: string };
          const dir = join(out, 'checkpoints', latest.dir);
          for (const f of ['config.json', 'model.safetensors', 'optimizer.safetensors', 'trainer.json', 'tokenizer.json']) expect(existsSync(join(dir, f)), `${latest.dir}/${f}`).toBe(true);
          const m = await loadModel(dir);
          m.dispose();
          seenSteps.push(latest.step);
        }
      }
    }
    console.log(`killed ${kills} times (checkpoint steps at the kills: ${seenSteps.join(' ')}), finished on attempt ${attempts}`);
    expect(finished).toBe(true);
    expect(kills).toBeGreaterThanOrEqual(5);
    expect(timeless(readJsonl<StepMetrics>(join(out, 'metrics.jsonl')))).toEqual(timeless(expected));
    expect(readJsonl(join(out, 'evals.jsonl'))).toEqual(readJsonl(join(whole, 'evals.jsonl')));
  }, 300_000);
});
