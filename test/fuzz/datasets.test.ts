// Property tests for the dataset loaders (lib/tasks/jsonl.ts, lib/tasks/math/load.ts,
// lib/tasks/code/load.ts): real files from test/fixtures/data, cut to a few records
// and mutated with a seeded mutator (test/fuzz/mutate.ts). For every mutated file,
// a loader either returns records (each with string id, prompt and answer) or throws
// TaskInputError (code ERR_SCORE_TASK_INPUT) with a one-line message naming the file;
// warnings in 'skip' mode follow the same rule. Never another exception, never a
// hang (each case must finish within PER_CASE_MS). Bounded by FUZZ_TS_MS per loader.
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseJsonl } from '../../lib/tasks/jsonl.js';
import { loadCodeData, loadHumanEval, loadMbpp } from '../../lib/tasks/code/load.js';
import { loadGsm8k, loadMathData, loadMathFolder, loadMathJsonl } from '../../lib/tasks/math/load.js';
import type { TaskRecord } from '../../lib/tasks/task.js';
import { baseSeed, below, budgetMs, checkTypedError, mutateJson, mutateJsonl, mutateText, pick, rng, type Rng } from './mutate.js';

const DATA = join(import.meta.dirname, '..', 'fixtures', 'data');
const PER_CASE_MS = 2000;
const CODE = 'ERR_SCORE_TASK_INPUT';
const work = mkdtempSync(join(tmpdir(), 'score-rl-fuzz-data-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const lines = (rel: string) => readFileSync(join(DATA, rel), 'utf8').split('\n').filter((l) => l.trim() !== '');
const SOURCES = {
  gsm8k: lines('gsm8k/test.jsonl'),
  math500: lines('math500/test.jsonl'),
  humaneval: lines('humaneval/HumanEval.jsonl'),
  mbpp: lines('mbpp/mbpp.jsonl'),
};
const POOL = [...SOURCES.gsm8k.slice(0, 20), ...SOURCES.math500.slice(0, 20), ...SOURCES.humaneval.slice(0, 5), ...SOURCES.mbpp.slice(0, 10)];

function sample(r: Rng, src: readonly string[], must: readonly string[] = []): string[] {
  const out = Array.from({ length: 1 + below(r, 6) }, () => pick(r, src));
  if (r() < 0.7) out.unshift(...must);
  return out;
}

interface Outcome {
  records?: TaskRecord[];
  failure?: string;
}

/** Run one loader call under the rule; returns a failure description or undefined. */
async function check(name: string, file: string, run: (warn: (m: string) => void) => Promise<TaskRecord[]>): Promise<Outcome> {
  const warnings: string[] = [];
  const t0 = performance.now();
  let records: TaskRecord[] | undefined;
  let failure: string | undefined;
  try {
    records = await run((m) => warnings.push(m));
    if (!Array.isArray(records)) failure = `${name}: returned ${typeof records}, not an array`;
    else {
      const bad = records.find((x) => typeof x.id !== 'string' || typeof x.prompt !== 'string' || typeof x.answer !== 'string');
      if (bad) failure = `${name}: a record without string id/prompt/answer: ${JSON.stringify(bad).slice(0, 200)}`;
    }
  } catch (e) {
    const why = checkTypedError(e, CODE, file);
    if (why) failure = `${name}: ${why}`;
  }
  for (const w of warnings) {
    if (/[\n\r]/.test(w) || !w.includes(file)) failure ??= `${name}: bad warning: ${JSON.stringify(w.slice(0, 200))}`;
  }
  const ms = performance.now() - t0;
  if (ms > PER_CASE_MS) failure ??= `${name}: took ${ms.toFixed(0)} ms`;
  return { records, failure };
}

type Case = { kind: string; file: string; text: string; run: (warn: (m: string) => void) => Promise<TaskRecord[]> };

/** Runs cases from `make` until the time budget (and at least `min` cases); returns the failures. */
async function property(label: string, min: number, make: (r: Rng, i: number) => Case): Promise<{ cases: number; loaded: number; failures: string[] }> {
  const seed = baseSeed() ^ [...label].reduce((h, c) => Math.imul(h ^ c.charCodeAt(0), 16777619), 2166136261);
  const r = rng(seed);
  const failures: string[] = [];
  const t0 = performance.now();
  let cases = 0;
  let loaded = 0;
  while ((cases < min || performance.now() - t0 < budgetMs()) && failures.length < 5 && cases < 100_000) {
    const c = make(r, cases);
    const out = await check(`${label} case ${cases} (${c.kind}, seed ${seed})`, c.file, c.run);
    if (out.failure) failures.push(`${out.failure}\n    input: ${JSON.stringify(c.text.slice(0, 600))}`);
    if (out.records) loaded++;
    cases++;
  }
  console.log(`${label}: ${cases} mutated files, ${loaded} loaded, ${failures.length} failures, ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  return { cases, loaded, failures };
}

function writeCase(name: string, text: string): string {
  const file = join(work, name);
  writeFileSync(file, text);
  return file;
}

describe('dataset loaders under mutated files', () => {
  it('parseJsonl: objects or a typed error naming file and line', async () => {
    const res = await property('parseJsonl', 300, (r) => {
      const text = mutateJsonl(sample(r, POOL), r, POOL);
      const file = 'data/x.jsonl';
      const skip = r() < 0.5;
      return {
        kind: skip ? 'skip' : 'stop',
        file,
        text,
        run: async (warn) => {
          const rows = parseJsonl(text, file, { onBadLine: skip ? 'skip' : 'stop', warn });
          for (const row of rows) if (row.value === null || typeof row.value !== 'object' || Array.isArray(row.value)) throw new Error('a row that is not an object');
          return rows.map((row) => ({ id: String(row.line), prompt: '', answer: '' }));
        },
      };
    });
    expect(res.failures).toEqual([]);
  });

  it('MATH-500 and GSM8K jsonl (loadMathJsonl, loadGsm8k, loadMathData auto)', async () => {
    const res = await property('math-jsonl', 200, (r, i) => {
      const gsm = r() < 0.5;
      const text = mutateJsonl(sample(r, gsm ? SOURCES.gsm8k : SOURCES.math500), r, POOL);
      const file = writeCase(`math-${i}.jsonl`, text);
      const opts = (warn: (m: string) => void) => ({ onBadLine: r() < 0.5 ? ('skip' as const) : ('stop' as const), warn });
      const which = below(r, 3);
      return {
        kind: ['auto', 'gsm8k', 'math-jsonl'][which]! + (gsm ? ' on gsm8k' : ' on math500'),
        file,
        text,
        run: (warn) => (which === 0 ? loadMathData(file, opts(warn)) : which === 1 ? loadGsm8k(file, opts(warn)) : loadMathJsonl(file, opts(warn))),
      };
    });
    expect(res.failures).toEqual([]);
    expect(res.loaded).toBeGreaterThan(0);
  });

  it('HumanEval and MBPP jsonl (loadHumanEval, loadMbpp, loadCodeData auto)', async () => {
    const shots = SOURCES.mbpp.filter((l) => [2, 3, 4].includes((JSON.parse(l) as { task_id: number }).task_id));
    const res = await property('code-jsonl', 200, (r, i) => {
      const he = r() < 0.5;
      const text = mutateJsonl(sample(r, he ? SOURCES.humaneval : SOURCES.mbpp, he ? [] : shots), r, POOL);
      const file = writeCase(`code-${i}.jsonl`, text);
      const skip = r() < 0.5;
      const split = pick(r, ['all', 'prompt', 'test', 'validation', 'train'] as const);
      const which = below(r, 3);
      return {
        kind: ['auto', 'humaneval', 'mbpp'][which]! + (he ? ' on humaneval' : ' on mbpp'),
        file,
        text,
        run: (warn) => {
          const opts = { onBadLine: skip ? ('skip' as const) : ('stop' as const), warn, split };
          return which === 0 ? loadCodeData(file, opts) : which === 1 ? loadHumanEval(file, opts) : loadMbpp(file, opts);
        },
      };
    });
    expect(res.failures).toEqual([]);
    expect(res.loaded).toBeGreaterThan(0);
  });

  it('MATH folders of one JSON file per problem (loadMathFolder, loadMathData auto)', async () => {
    const src = join(DATA, 'MATH', 'train');
    const files: [string, string][] = [];
    for (const sub of readdirSync(src)) for (const f of readdirSync(join(src, sub))) files.push([`${sub}/${f}`, readFileSync(join(src, sub, f), 'utf8')]);
    const res = await property('math-folder', 100, (r, i) => {
      const dir = join(work, `MATH-${i}`);
      const picked = files.filter(() => r() < 0.5);
      let shown = '';
      for (const [name, text] of picked) {
        let t = text;
        if (r() < 0.5) {
          t = r() < 0.6 ? JSON.stringify(mutateJson(JSON.parse(text), r)) : mutateText(text, r);
          shown += `${name}: ${t.slice(0, 200)}\n`;
        }
        mkdirSync(join(dir, name, '..'), { recursive: true });
        writeFileSync(join(dir, name), t);
      }
      if (picked.length === 0) mkdirSync(dir, { recursive: true });
      if (r() < 0.1) mkdirSync(join(dir, 'empty.json'), { recursive: true }); // a folder named like a problem
      const skip = r() < 0.5;
      return {
        kind: skip ? 'skip' : 'stop',
        file: dir,
        text: shown,
        run: (warn) => (r() < 0.5 ? loadMathFolder(dir, { onBadLine: skip ? 'skip' : 'stop', warn }) : loadMathData(dir, { onBadLine: skip ? 'skip' : 'stop', warn })),
      };
    });
    expect(res.failures).toEqual([]);
    expect(res.loaded).toBeGreaterThan(0);
  });
});
