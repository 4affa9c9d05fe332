// `score-rl demo` as a user runs it, in its smallest mode (--smoke: a few steps of every
// phase). Loose checks only: the numbers of so short a run mean nothing; the timing and
// the table of the real demo are measured, not asserted (docs/demo.md).
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const root = path.resolve(__dirname, '..', '..');
const bin = path.join(root, 'dist', 'cli', 'main.js');
const tmp = mkdtempSync(path.join(os.tmpdir(), 'score-demo-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function demo(...args: string[]) {
  const r = spawnSync(process.execPath, [bin, 'demo', ...args], { encoding: 'utf8', env: { ...process.env, OMP_NUM_THREADS: '1' } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const METHODS = ['base', 'single-turn RL', 'w/o Stage I', 'SCoRe'];

describe('score-rl demo', () => {
  it('--help explains the task and every option', () => {
    const r = demo('--help');
    expect(r.code).toBe(0);
    for (const s of ['parity', '--quick', '--json', '--out', '--seed', '--ablations', '--threads', 'held-out']) expect(r.stdout).toContain(s);
  });

  it('rejects bad options with one line', () => {
    const r = demo('--ablations', 'some');
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(demo('--bogus').code).toBe(2);
  });

  it('--smoke --json: the JSON summary is the last stdout line; the run folder holds the report', () => {
    const out = path.join(tmp, 'a');
    const r = demo('--smoke', '--json', '--out', out, '--seed', '3');
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout.trim().split('\n');
    const j = JSON.parse(lines[lines.length - 1]!);
    expect(j.heldout).toBe(50);
    expect(j.seconds).toBeGreaterThan(0);
    expect(j.rows.map((x: { method: string }) => x.method)).toEqual(METHODS);
    for (const row of j.rows) {
      for (const k of ['acc_t1', 'acc_t2', 'delta_i2c', 'delta_c2i', 'acc_t2_random_y1']) {
        expect(row[k]).toBeGreaterThanOrEqual(0);
        expect(row[k]).toBeLessThanOrEqual(1);
      }
      expect(row.delta).toBeCloseTo(row.delta_i2c - row.delta_c2i, 12);
      expect(row.delta_ci95).toHaveLength(2);
    }
    // progress went to stderr as plain lines (not a terminal)
    expect(r.stderr).toContain('[SCoRe] step');
    expect(r.stderr).not.toContain('\r');
    for (const f of ['config.json', 'report.html', 'report.json', 'base/config.json', 'base/tokenizer.json', 'runs/score/metrics.jsonl', 'runs/single-turn-rl/metrics.jsonl', 'runs/w-o-stage-i/evals.jsonl'])
      expect(existsSync(path.join(out, f)), f).toBe(true);
    const html = readFileSync(path.join(out, 'report.html'), 'utf8');
    expect(html).toContain('<svg');
    expect(html).not.toMatch(/(src|href)=["']?https?:/); // self-contained
    const full = JSON.parse(readFileSync(path.join(out, 'report.json'), 'utf8'));
    expect(full.rows).toHaveLength(4);

    // the same seed gives the same table; --ablations all adds a row after the others
    const again = demo('--smoke', '--json', '--out', path.join(tmp, 'b'), '--seed', '3', '--ablations', 'all');
    expect(again.code, again.stderr).toBe(0);
    const j2 = JSON.parse(again.stdout.trim().split('\n').pop()!);
    expect(j2.rows.slice(0, 4)).toEqual(j.rows);
    expect(j2.rows[4].method).toBe('w/o bonus');
  }, 240_000);

  it('Ctrl-C stops after the current step and exits 130', async () => {
    const child = spawn(process.execPath, [bin, 'demo', '--smoke', '--out', path.join(tmp, 'c')], { env: { ...process.env, OMP_NUM_THREADS: '1' } });
    let err = '';
    child.stderr.on('data', (d) => {
      err += String(d);
      if (err.includes('[base')) child.kill('SIGINT');
    });
    const code = await new Promise<number | null>((res) => child.on('close', (c) => res(c)));
    expect(code).toBe(130);
    expect(err).toContain('stopping');
  }, 120_000);
});
