// Real data through the sandbox: every HumanEval canonical solution passes its tests,
// MBPP reference code passes its test_list; prompt formats, program extraction, bad input.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CodeTask, extractProgram, loadCodeData, loadHumanEval, loadMbpp, programFor, testsFor } from '../../lib/tasks/code/index.js';

const DATA = join(import.meta.dirname, '../fixtures/data');
const task = new CodeTask();
const tmp = mkdtempSync(join(tmpdir(), 'score-rl-code-'));
afterAll(async () => {
  await task.close();
  rmSync(tmp, { recursive: true, force: true });
});

describe('HumanEval (real data)', async () => {
  const records = await loadHumanEval(join(DATA, 'humaneval/HumanEval.jsonl'));

  it('every canonical solution passes its tests (164/164)', { timeout: 180_000 }, async () => {
    expect(records).toHaveLength(164);
    const t0 = Date.now();
    const rewards = await Promise.all(records.map((r) => task.reward(String(r.meta.canonicalSolution), r)));
    const failures = records.filter((_, i) => !rewards[i]!.correct).map((r, i) => `${r.id}: ${rewards[i]!.reason}`);
    console.log(`HumanEval canonical: ${164 - failures.length}/164 pass in ${Date.now() - t0} ms (pool of ${task.pool.concurrency}, ${task.pool.isolation})`, failures);
    expect(failures).toEqual([]);
  });

  it('a wrong body fails with the assertion as reason; a full function in a fence replaces the stub', async () => {
    const r = records[0]!; // has_close_elements
    const wrong = await task.reward('    return False\n', r);
    expect(wrong.correct).toBe(false);
    expect(wrong.reason).toMatch(/^failed: AssertionError/);
    const fenced = 'Here it is:\n```python\ndef has_close_elements(numbers, threshold):\n    return any(abs(a - b) < threshold for i, a in enumerate(numbers) for b in numbers[i + 1:])\n```\n';
    expect(await task.reward(fenced, r)).toEqual({ correct: true, reason: 'passed' });
  });
});

describe('MBPP (real data)', async () => {
  const records = await loadMbpp(join(DATA, 'mbpp/mbpp.jsonl'));

  // All 974 take about a minute on two cores (a process per program); by default every
  // 8th record plus the two with test_setup_code run, SCORE_RL_FULL_DATA=1 runs them all.
  const full = process.env.SCORE_RL_FULL_DATA === '1';
  it(`reference code passes its test_list: count and failures (${full ? 'all 974' : 'every 8th record'})`, { timeout: 300_000 }, async () => {
    expect(records).toHaveLength(974);
    const chosen = full ? records : records.filter((r, i) => i % 8 === 0 || r.id === 'MBPP/367' || r.id === 'MBPP/927');
    const t0 = Date.now();
    const rewards = await Promise.all(chosen.map((r) => task.reward(String(r.meta.referenceCode), r)));
    const failures = chosen.map((r, i) => [r.id, rewards[i]!] as const).filter(([, w]) => !w.correct).map(([id, w]) => `${id}: ${w.reason}`);
    console.log(`MBPP reference code: ${chosen.length - failures.length}/${chosen.length} pass in ${Date.now() - t0} ms`, failures);
    expect(failures).toEqual([]);
  });

  it('builds the 3-shot prompt of Austin et al. from tasks 2, 3 and 4', () => {
    const r = records.find((x) => x.id === 'MBPP/11')!;
    const shots = r.prompt.split('You are an expert Python programmer, and here is your task: ');
    expect(shots).toHaveLength(5); // '' + 3 shots + the task
    expect(shots[1]).toMatch(/^Write a function to find the similar elements from the given two tuple lists\. Your code should pass these tests:\n\nassert similar_elements/);
    expect(shots[1]).toMatch(/\[BEGIN\]\n[\s\S]+\n\[DONE\]\n/);
    expect(shots[4]).toMatch(/^Write a python function to remove first and last occurrence of a given character from the string\. Your code should pass these tests:\n\nassert remove_Occ/);
    expect(r.prompt.endsWith('[BEGIN]\n')).toBe(true);
    expect(r.prompt).not.toContain('\r');
  });

  it('splits by task id and grades a continuation that ends with [DONE]', { timeout: 60_000 }, async () => {
    expect(await loadMbpp(join(DATA, 'mbpp/mbpp.jsonl'), { split: 'test' })).toHaveLength(500);
    expect(await loadMbpp(join(DATA, 'mbpp/mbpp.jsonl'), { split: 'prompt' })).toHaveLength(10);
    const r = records.find((x) => x.id === 'MBPP/11')!;
    const completion = `${String(r.meta.referenceCode)}\n[DONE]\nYou are an expert Python programmer, and here is your task: ...`;
    expect(await task.reward(completion, r)).toEqual({ correct: true, reason: 'passed' });
    expect((await task.reward('def remove_Occ(s, ch):\n    return s\n[DONE]', r)).correct).toBe(false);
  });
});

describe('program extraction', () => {
  it('takes [BEGIN]...[DONE], the last python fence, an unclosed fence, or the text', () => {
    expect(extractProgram('x\n[BEGIN]\nprint(1)\n[DONE]\ny')).toBe('print(1)\n');
    expect(extractProgram('print(2)\n[DONE]\nmore')).toBe('print(2)\n');
    expect(extractProgram('a\n```python\nv = 1\n```\nthen\n```py\nv = 2\n```\n')).toBe('v = 2\n');
    expect(extractProgram('```text\nnot code\n```\n```\nv = 3\n```')).toBe('v = 3\n');
    expect(extractProgram('```python\nv = 4\n')).toBe('v = 4\n');
    expect(extractProgram('def f():\n    return 5\n')).toBe('def f():\n    return 5\n');
  });

  it('calls HumanEval check() on the entry point or the last function; leaves asserts alone', () => {
    expect(testsFor('def f(): pass\ndef g(): pass\n', 'def check(candidate):\n    pass\n')).toMatch(/check\(g\)\n$/);
    expect(testsFor('', 'def check(candidate):\n    pass\n', 'h')).toMatch(/check\(h\)\n$/);
    expect(testsFor('', 'assert f(1) == 2\n')).toBe('assert f(1) == 2\n');
    const rec = { id: 'x', prompt: 'def f(x):\n    """doc"""\n', answer: '', meta: { kind: 'humaneval', entryPoint: 'f' } };
    expect(programFor('    return x\n', rec)).toBe('def f(x):\n    """doc"""\n    return x\n');
  });
});

describe('bad code data: one-line errors naming file, line and field', () => {
  const write = (name: string, text: string) => {
    const p = join(tmp, name);
    writeFileSync(p, text);
    return p;
  };
  const message = async (p: Promise<unknown>) => p.then(() => 'no error', (e: Error) => e.message);

  it('missing files, empty files, unknown layouts', async () => {
    expect(await message(loadCodeData('/nonexistent/he.jsonl'))).toBe('/nonexistent/he.jsonl: no such file');
    const empty = write('empty.jsonl', '');
    expect(await message(loadCodeData(empty))).toBe(`${empty}: empty data set (no records)`);
    const other = write('other.jsonl', '{"a": 1}\n');
    expect(await message(loadCodeData(other))).toBe(`${other}:1: neither HumanEval (entry_point) nor MBPP (test_list) fields; pass the format`);
  });

  it('bad records: missing fields, wrong types, malformed lines, absent MBPP shots', async () => {
    const he = write('he.jsonl', JSON.stringify({ task_id: 'T/0', prompt: 'def f():\n', entry_point: 'f' }) + '\n');
    expect(await message(loadHumanEval(he))).toBe(`${he}:1: field 'test' is missing`);
    const mb = write('mb.jsonl', JSON.stringify({ task_id: 2, text: 't', code: 'x=1', test_list: 'assert x' }) + '\n');
    expect(await message(loadMbpp(mb))).toBe(`${mb}:1: field 'test_list' must be a non-empty list of strings`);
    const line = (id: number) => JSON.stringify({ task_id: id, text: 't', code: 'x=1', test_list: ['assert x == 1'], test_setup_code: '' });
    const broken = write('broken.jsonl', `${line(2)}\n{"task_id": 3,\n${line(4)}\n`);
    expect(await message(loadMbpp(broken))).toMatch(new RegExp(`^${broken}:2: invalid JSON`));
    expect(await message(loadMbpp(broken, { onBadLine: 'skip', warn: () => {} }))).toBe(`${broken}: the few-shot tasks 2, 3, 4 of MBPP's prompt are not all in this file`);
    const ok = write('ok.jsonl', [2, 3, 4, 11].map(line).join('\n') + '\n');
    expect((await loadMbpp(ok)).map((r) => r.id)).toEqual(['MBPP/2', 'MBPP/3', 'MBPP/4', 'MBPP/11']);
  });
});
