// Loaders for MATH (one JSON file per problem), MATH-500 / PRM800K jsonl and GSM8K jsonl.
import { readdir, readFile, stat } from 'node:fs/promises';
import { basename, join, relative } from 'node:path';
import { field, oneLine, readJsonl, skipOrThrow, type JsonlOptions } from '../jsonl.js';
import { TaskInputError, type TaskRecord } from '../task.js';
import { lastBoxed } from './extract.js';
import { formatPrompt, type MathPromptStyle } from './prompt.js';

export type MathFormat = 'auto' | 'math-folder' | 'math-jsonl' | 'gsm8k';

export interface MathLoadOptions extends JsonlOptions {
  format?: MathFormat;
  prompt?: MathPromptStyle;
}

/** The gold answer of a MATH problem: the `answer` field where present, else the last \boxed{} of the solution. */
export function mathGold(solution: string, answer: unknown): string | undefined {
  if (typeof answer === 'string' && answer.trim() !== '') return answer.trim();
  return lastBoxed(solution);
}

/** GSM8K's gold answer: the text after the last "####". */
export function gsm8kGold(answer: string): string | undefined {
  const i = answer.lastIndexOf('####');
  if (i < 0) return undefined;
  const a = answer.slice(i + 4).trim();
  return a === '' ? undefined : a;
}

async function listJson(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...(await listJson(p)));
    else if (e.isFile() && e.name.endsWith('.json')) out.push(p);
  }
  return out;
}

/** Natural order, so that algebra/2.json comes before algebra/10.json. */
const natural = new Intl.Collator('en', { numeric: true }).compare;

export async function loadMathFolder(dir: string, opts: MathLoadOptions = {}): Promise<TaskRecord[]> {
  let found: string[];
  try {
    found = await listJson(dir);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new TaskInputError(code === 'ENOENT' ? `${dir}: no such folder` : code === 'ENOTDIR' ? `${dir}: is a file, expected a folder` : `${dir}: ${oneLine((e as Error).message)}`);
  }
  const files = found.sort((a, b) => natural(relative(dir, a), relative(dir, b)));
  if (files.length === 0) throw new TaskInputError(`${dir}: empty data set (no .json problem files)`);
  const records: TaskRecord[] = [];
  for (const file of files) {
    let obj: Record<string, unknown>;
    try {
      obj = JSON.parse(await readFile(file, 'utf8')) as Record<string, unknown>;
      if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) throw new Error('expected a JSON object');
    } catch (e) {
      skipOrThrow(new TaskInputError(`${file}: invalid JSON (${oneLine((e as Error).message)})`), opts);
      continue;
    }
    const bad = ['problem', 'solution'].find((k) => typeof obj[k] !== 'string');
    if (bad) {
      skipOrThrow(new TaskInputError(`${file}: field '${bad}' is missing or not a string`), opts);
      continue;
    }
    const gold = mathGold(obj.solution as string, obj.answer);
    if (gold === undefined) {
      skipOrThrow(new TaskInputError(`${file}: no gold answer (no \\boxed{} in field 'solution')`), opts);
      continue;
    }
    records.push({
      id: relative(dir, file),
      prompt: formatPrompt(obj.problem as string, opts.prompt),
      answer: gold,
      meta: { problem: obj.problem, solution: obj.solution, level: obj.level, subject: obj.type },
    });
  }
  return records;
}

export async function loadMathJsonl(path: string, opts: MathLoadOptions = {}): Promise<TaskRecord[]> {
  const records: TaskRecord[] = [];
  for (const row of await readJsonl(path, opts)) {
    try {
      const problem = field(row, 'problem', path);
      const solution = typeof row.value.solution === 'string' ? row.value.solution : '';
      const gold = mathGold(solution, row.value.answer);
      if (gold === undefined) throw new TaskInputError(`${path}:${row.line}: no gold answer (no field 'answer' and no \\boxed{} in field 'solution')`);
      const id = typeof row.value.unique_id === 'string' ? row.value.unique_id : `${basename(path)}:${row.line}`;
      records.push({ id, prompt: formatPrompt(problem, opts.prompt), answer: gold, meta: { problem, solution, level: row.value.level, subject: row.value.subject } });
    } catch (e) {
      skipOrThrow(e, opts);
    }
  }
  return records;
}

export async function loadGsm8k(path: string, opts: MathLoadOptions = {}): Promise<TaskRecord[]> {
  const records: TaskRecord[] = [];
  for (const row of await readJsonl(path, opts)) {
    try {
      const question = field(row, 'question', path);
      const solution = field(row, 'answer', path);
      const gold = gsm8kGold(solution);
      if (gold === undefined) throw new TaskInputError(`${path}:${row.line}: no gold answer (no '####' in field 'answer')`);
      records.push({ id: `${basename(path)}:${row.line}`, prompt: formatPrompt(question, opts.prompt), answer: gold, meta: { problem: question, solution } });
    } catch (e) {
      skipOrThrow(e, opts);
    }
  }
  return records;
}

/** Load any of the three layouts; `auto` looks at the path (folder or not) and the first record's fields. */
export async function loadMathData(path: string, opts: MathLoadOptions = {}): Promise<TaskRecord[]> {
  let info;
  try {
    info = await stat(path);
  } catch {
    throw new TaskInputError(`${path}: no such file or folder`);
  }
  let format = opts.format ?? 'auto';
  if (format === 'auto') {
    if (info.isDirectory()) format = 'math-folder';
    else {
      const first = (await readJsonl(path, { ...opts, onBadLine: 'skip', warn: () => {} }))[0]!.value;
      format = 'question' in first ? 'gsm8k' : 'math-jsonl';
    }
  }
  const records =
    format === 'math-folder' ? await loadMathFolder(path, opts) : format === 'gsm8k' ? await loadGsm8k(path, opts) : await loadMathJsonl(path, opts);
  if (records.length === 0) throw new TaskInputError(`${path}: no usable records`);
  return records;
}
