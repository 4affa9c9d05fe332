// Real data: every MATH-500 reference solution grades equal to its own answer and
// not equal to any other record's answer (except answers that really are the same),
// the same for GSM8K; the loaders of the three layouts; bad data files.
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { MathTask, gradeMath, loadGsm8k, loadMathData, loadMathFolder, loadMathJsonl, SCORE_MATH_INSTRUCTION } from '../../lib/tasks/math/index.js';

const DATA = join(import.meta.dirname, '../fixtures/data');
const tmp = mkdtempSync(join(tmpdir(), 'score-rl-math-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
function file(name: string, text: string): string {
  const p = join(tmp, name);
  writeFileSync(p, text);
  return p;
}

/** Answers that are the same value written differently (units, degrees, dollars and
 * thousands separators are dropped by design); reviewed by hand. */
const SAME_VALUE = new Set(['90^\\circ|90', '120^\\circ|120', '36^\\circ|36', '30^\\circ|30', '\\$36|36', '\\$36|36^\\circ', '15\\mbox{ cm}^2|15', '10,\\!080|10080', '\\frac{1}{4}|\\frac14', 'x=5|5', '1,-2|-2,1']);
const sameValue = (a: string, b: string) => SAME_VALUE.has(`${a}|${b}`) || SAME_VALUE.has(`${b}|${a}`);
const compact = (s: string) => s.replace(/\s+/g, '');

describe('MATH-500 (real data)', async () => {
  const records = await loadMathJsonl(join(DATA, 'math500/test.jsonl'));

  it('uses the paper instruction verbatim (as the issue quotes it)', () => {
    expect(SCORE_MATH_INSTRUCTION).toBe(
      'You are a math expert. When you respond, respond only with the Solution of the final Problem, thinking step by step. At the end of the Solution, when you give your final answer, write it in the form "Final Answer: The final answer is $answer$. I hope it is correct."',
    );
  });

  it('loads 500 records with the paper prompt and the answer field as gold', () => {
    expect(records).toHaveLength(500);
    expect(records[0]!.id).toBe('test/precalculus/807.json');
    expect(records[0]!.answer).toBe('\\left( 3, \\frac{\\pi}{2} \\right)');
    expect(records[0]!.prompt.startsWith(SCORE_MATH_INSTRUCTION)).toBe(true);
    expect(records[0]!.prompt).toContain('Convert the point $(0,3)$');
  });

  it('grades every reference solution equal to its own answer (500/500)', () => {
    const failures = records.filter((r) => !gradeMath(r.meta.solution as string, r.answer).correct).map((r) => r.id);
    console.log(`MATH-500: reference solution == answer for ${500 - failures.length}/500`, failures);
    expect(failures).toEqual([]);
  });

  it("grades every solution not equal to every other record's answer, unless the answers are the same value", () => {
    let pairs = 0;
    let equalPairs = 0;
    const wrong: string[] = [];
    for (const r of records) {
      const sol = r.meta.solution as string;
      for (const o of records) {
        if (o === r) continue;
        pairs++;
        const eq = gradeMath(sol, o.answer).correct;
        const expected = compact(r.answer) === compact(o.answer) || sameValue(r.answer, o.answer);
        if (eq) equalPairs++;
        if (eq !== expected) wrong.push(`${r.id} (${r.answer}) vs ${o.id} (${o.answer}): ${eq}`);
      }
    }
    console.log(`MATH-500 cross-check: ${pairs} pairs, ${equalPairs} equal (same answer), ${wrong.length} disagreements`);
    expect(pairs).toBe(500 * 499);
    expect(wrong).toEqual([]);
  });
});

describe('GSM8K test (real data)', async () => {
  const records = await loadGsm8k(join(DATA, 'gsm8k/test.jsonl'));
  const value = (a: string) => Number(a.replace(/,/g, ''));

  it('grades every reference solution equal to its #### answer (1319/1319)', () => {
    expect(records).toHaveLength(1319);
    const failures = records.filter((r) => !gradeMath(r.meta.solution as string, r.answer).correct).map((r) => r.id);
    console.log(`GSM8K: reference solution == answer for ${1319 - failures.length}/1319`, failures);
    expect(failures).toEqual([]);
  });

  it('grades each solution against 60 other records: equal exactly when the numbers are equal', () => {
    const wrong: string[] = [];
    let pairs = 0;
    for (let i = 0; i < records.length; i++) {
      for (let k = 1; k <= 60; k++) {
        const o = records[(i + k * 21) % records.length]!;
        const r = records[i]!;
        pairs++;
        if (gradeMath(r.meta.solution as string, o.answer).correct !== (value(r.answer) === value(o.answer))) wrong.push(`${r.id} vs ${o.id}`);
      }
    }
    console.log(`GSM8K cross-check: ${pairs} pairs, ${wrong.length} disagreements`);
    expect(wrong).toEqual([]);
  });
});

describe('loaders', () => {
  it('reads the MATH folder layout in natural order, gold from the last \\boxed', async () => {
    const recs = await loadMathFolder(join(DATA, 'MATH/train'), { prompt: 'plain' });
    expect(recs.map((r) => r.id)).toEqual(['algebra/0.json', 'algebra/3.json', 'algebra/4.json', 'algebra/5.json', 'algebra/7.json', 'algebra/12.json', 'geometry/377.json']);
    expect(recs.find((r) => r.id === 'geometry/377.json')!.meta.level).toBe('Level ?');
    for (const r of recs) {
      expect(r.prompt.startsWith('Problem:\n')).toBe(true);
      expect(gradeMath(r.meta.solution as string, r.answer).correct).toBe(true);
    }
  });

  it('detects the layout (folder, MATH jsonl, GSM8K jsonl) and takes custom prompt templates', async () => {
    expect(await loadMathData(join(DATA, 'MATH'))).toHaveLength(7);
    const g = await loadMathData(join(DATA, 'gsm8k/test.jsonl'), { prompt: 'Q: {problem}\nA:' });
    expect(g[0]!.prompt.startsWith('Q: Janet')).toBe(true);
    expect(g[0]!.answer).toBe('18');
    expect((await new MathTask().load(join(DATA, 'math500/test.jsonl'))).length).toBe(500);
  });

  it('takes the last \\boxed{} as gold when there is no answer field', async () => {
    const p = file('noanswer.jsonl', JSON.stringify({ problem: 'p', solution: 'first \\boxed{1} then \\boxed{\\frac{2}{3}}' }) + '\n');
    expect((await loadMathJsonl(p))[0]!.answer).toBe('\\frac{2}{3}');
  });
});

describe('bad data: one-line errors naming file, line and field', () => {
  const reject = async (p: Promise<unknown>) => {
    try {
      await p;
    } catch (e) {
      expect((e as Error).message).not.toContain('\n');
      return (e as Error).message;
    }
    throw new Error('expected an error');
  };

  it('a path that does not exist', async () => {
    expect(await reject(loadMathData('/nonexistent/math.jsonl'))).toBe('/nonexistent/math.jsonl: no such file or folder');
    expect(await reject(loadMathFolder('/nonexistent/MATH'))).toBe('/nonexistent/MATH: no such folder');
    expect(await reject(loadMathFolder(join(DATA, 'math500/test.jsonl')))).toBe(`${join(DATA, 'math500/test.jsonl')}: is a file, expected a folder`);
  });

  it('an empty file and an empty folder', async () => {
    const p = file('empty.jsonl', '\n\n');
    expect(await reject(loadMathJsonl(p))).toBe(`${p}: empty data set (no records)`);
    const d = join(tmp, 'emptydir');
    mkdirSync(d);
    expect(await reject(loadMathFolder(d))).toBe(`${d}: empty data set (no .json problem files)`);
  });

  it('a malformed line: stop (default) or skip with a warning', async () => {
    const good = JSON.stringify({ problem: 'p', answer: '1' });
    const p = file('bad.jsonl', `${good}\n{"problem": "q", "answer": \n${good}\n`);
    expect(await reject(loadMathJsonl(p))).toMatch(new RegExp(`^${p}:2: invalid JSON`));
    const warnings: string[] = [];
    const recs = await loadMathJsonl(p, { onBadLine: 'skip', warn: (m) => warnings.push(m) });
    expect(recs).toHaveLength(2);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(new RegExp(`^${p}:2: invalid JSON`));
  });

  it('a missing field, a non-object line, a record with no gold answer', async () => {
    const p1 = file('nofield.jsonl', JSON.stringify({ question: 'x' }) + '\n');
    expect(await reject(loadMathJsonl(p1))).toBe(`${p1}:1: field 'problem' is missing`);
    const p2 = file('array.jsonl', '[1, 2]\n');
    expect(await reject(loadMathJsonl(p2))).toBe(`${p2}:1: expected a JSON object`);
    const p3 = file('nogold.jsonl', JSON.stringify({ problem: 'p', solution: 'no box here' }) + '\n');
    expect(await reject(loadMathJsonl(p3))).toBe(`${p3}:1: no gold answer (no field 'answer' and no \\boxed{} in field 'solution')`);
    const p4 = file('gsm.jsonl', JSON.stringify({ question: 'q', answer: 'it is 5' }) + '\n');
    expect(await reject(loadGsm8k(p4))).toBe(`${p4}:1: no gold answer (no '####' in field 'answer')`);
    const p5 = file('num.jsonl', JSON.stringify({ problem: 7, answer: '1' }) + '\n');
    expect(await reject(loadMathJsonl(p5))).toBe(`${p5}:1: field 'problem' is not a string (number)`);
  });

  it('a bad problem file in a MATH folder', async () => {
    const d = join(tmp, 'MATHbad/algebra');
    mkdirSync(d, { recursive: true });
    writeFileSync(join(d, '1.json'), '{"problem": "p", "solution": "\\\\boxed{2}"}');
    writeFileSync(join(d, '2.json'), '{"problem": ');
    expect(await reject(loadMathFolder(join(tmp, 'MATHbad')))).toMatch(new RegExp(`^${join(d, '2.json')}: invalid JSON`));
    expect(await loadMathFolder(join(tmp, 'MATHbad'), { onBadLine: 'skip', warn: () => {} })).toHaveLength(1);
  });
});
