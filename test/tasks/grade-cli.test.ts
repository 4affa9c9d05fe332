// `score-rl grade`: one verdict per input line in order, usage, and bad input.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { run } from '../../lib/cli/grade.js';

const tmp = mkdtempSync(join(tmpdir(), 'score-rl-grade-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const write = (name: string, lines: Array<unknown | string>) => {
  const p = join(tmp, name);
  writeFileSync(p, lines.map((l) => (typeof l === 'string' ? l : JSON.stringify(l))).join('\n') + '\n');
  return p;
};

async function grade(args: string[]): Promise<{ code: number | string; out: string; err: string }> {
  let out = '';
  let err = '';
  const o = vi.spyOn(process.stdout, 'write').mockImplementation((s) => ((out += String(s)), true));
  const e = vi.spyOn(process.stderr, 'write').mockImplementation((s) => ((err += String(s)), true));
  const log = vi.spyOn(console, 'log').mockImplementation((s) => void (out += `${String(s)}\n`));
  try {
    return { code: await run(args), out, err };
  } catch (x) {
    return { code: (x as Error).message, out, err };
  } finally {
    o.mockRestore();
    e.mockRestore();
    log.mockRestore();
  }
}
const verdicts = (out: string) => out.trim().split('\n').map((l) => JSON.parse(l) as { correct: boolean; reason: string });

describe('score-rl grade', () => {
  it('--task math: one line per input line, in order', async () => {
    const p = write('m.jsonl', [
      { pred: 'Final Answer: The final answer is $\\frac{1}{2}$. I hope it is correct.', gold: '0.5' },
      { pred: 'so \\boxed{3}', gold: '4' },
      '',
      { pred: 'x = 5', gold: '5' },
    ]);
    const r = await grade(['--task', 'math', '--input', p]);
    expect(r.code).toBe(0);
    expect(verdicts(r.out).map((v) => v.correct)).toEqual([true, false, true]);
    expect(Object.keys(verdicts(r.out)[0]!)).toEqual(['correct', 'reason']);
    expect(r.err).toBe('graded 3 lines: 2 correct (66.7%)\n');
  });

  it('--task code: programs run in the sandbox, results in input order', async () => {
    const p = write('c.jsonl', [
      { program: 'import time\ntime.sleep(0.5)\ndef add(a, b):\n    return a + b\n', tests: 'assert add(1, 2) == 3' },
      { program: '```python\ndef add(a, b):\n    return a - b\n```', tests: 'def check(candidate):\n    assert candidate(1, 2) == 3\n' },
      { program: 'def add(a, b):\n    return a + b\n', tests: 'def check(candidate):\n    assert candidate(1, 2) == 3\n', entry_point: 'add' },
      { program: 'while True:\n    pass\n', tests: '' },
    ]);
    const r = await grade(['--task', 'code', '--input', p, '--timeout-ms', '1500', '--json']);
    expect(r.code).toBe(0);
    const v = verdicts(r.out);
    expect(v.map((x) => x.correct)).toEqual([true, false, true, false]);
    expect(v[1]!.reason).toMatch(/AssertionError/);
    expect(v[3]!.reason).toMatch(/timed out after 1500 ms|CPU time/);
    expect(JSON.parse(r.err)).toEqual({ task: 'code', lines: 4, correct: 2, accuracy: 0.5 });
  });

  it('--help prints usage', async () => {
    const r = await grade(['--help']);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^usage: score-rl grade --task math\|code --input FILE/);
  });

  it('bad input: one-line errors naming the file, line and field; skip answers bad lines and goes on', async () => {
    expect((await grade(['--task', 'math'])).code).toBe("missing required option '--input'");
    expect((await grade(['--task', 'poetry', '--input', 'x'])).code).toBe("option '--task': 'poetry' is not one of math, code");
    expect((await grade(['--task', 'math', '--input', join(tmp, 'none.jsonl')])).code).toBe(`${join(tmp, 'none.jsonl')}: no such file`);
    const empty = write('empty.jsonl', ['']);
    expect((await grade(['--task', 'math', '--input', empty])).code).toBe(`${empty}: no lines to grade`);
    const bad = write('bad.jsonl', [{ pred: '1', gold: '1' }, '{"pred": ', { gold: '1' }, { program: 'x', tests: 'y' }]);
    const stop = await grade(['--task', 'math', '--input', bad]);
    expect(stop.code).toMatch(new RegExp(`^${bad}:2: invalid JSON`));
    expect(stop.out).toBe('');
    const skip = await grade(['--task', 'math', '--input', bad, '--on-bad-line', 'skip']);
    const v = verdicts(skip.out);
    expect(v).toHaveLength(4);
    expect(v[0]!.correct).toBe(true);
    expect(v[1]!.reason).toMatch(new RegExp(`^bad input: ${bad}:2: invalid JSON`));
    expect(v[2]!.reason).toBe(`bad input: ${bad}:3: field 'pred' is missing`);
    expect(v[3]!.reason).toBe(`bad input: ${bad}:4: field 'pred' is missing`);
    expect(skip.err).toContain(`warning: ${bad}:2: invalid JSON`);
    const codeBad = await grade(['--task', 'code', '--input', bad]);
    expect(codeBad.code).toBe(`${bad}:1: field 'program' is missing`);
  });
});
