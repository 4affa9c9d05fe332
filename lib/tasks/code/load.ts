// Loaders for HumanEval and MBPP jsonl, with the SCoRe paper's prompt formats.
import { basename } from 'node:path';
import { field, readJsonl, skipOrThrow, type JsonlOptions, type JsonlLine } from '../jsonl.js';
import { TaskInputError, type TaskRecord } from '../task.js';

export type CodeFormat = 'auto' | 'humaneval' | 'mbpp';
export type MbppSplit = 'all' | 'prompt' | 'test' | 'validation' | 'train';

export interface CodeLoadOptions extends JsonlOptions {
  format?: CodeFormat;
  /** MBPP task ids: prompt 1-10, test 11-510, validation 511-600, train 601-974 (default all) */
  split?: MbppSplit;
}

/** HumanEval: the prompt is completed zero-shot; the record's answer is the test code. */
export async function loadHumanEval(path: string, opts: CodeLoadOptions = {}): Promise<TaskRecord[]> {
  const out: TaskRecord[] = [];
  for (const row of await readJsonl(path, opts)) {
    try {
      const prompt = field(row, 'prompt', path);
      const test = field(row, 'test', path);
      const entryPoint = field(row, 'entry_point', path);
      const id = typeof row.value.task_id === 'string' ? row.value.task_id : `${basename(path)}:${row.line}`;
      const canonical = typeof row.value.canonical_solution === 'string' ? row.value.canonical_solution : undefined;
      out.push({ id, prompt, answer: test, meta: { kind: 'humaneval', entryPoint, canonicalSolution: canonical } });
    } catch (e) {
      skipOrThrow(e, opts);
    }
  }
  return out;
}

interface MbppItem {
  id: number;
  text: string;
  code: string;
  tests: string[];
  setup: string;
}

function mbppItem(row: JsonlLine, path: string): MbppItem {
  const text = field(row, 'text', path);
  const code = field(row, 'code', path).replace(/\r\n/g, '\n');
  const id = row.value.task_id;
  if (typeof id !== 'number') throw new TaskInputError(`${path}:${row.line}: field 'task_id' is ${id === undefined ? 'missing' : 'not a number'}`);
  const tests = row.value.test_list;
  if (!Array.isArray(tests) || tests.length === 0 || !tests.every((t) => typeof t === 'string'))
    throw new TaskInputError(`${path}:${row.line}: field 'test_list' must be a non-empty list of strings`);
  const setup = typeof row.value.test_setup_code === 'string' ? row.value.test_setup_code : '';
  return { id, text, code, tests: tests as string[], setup };
}

/** One MBPP problem in the format of Austin et al. (2021). */
function mbppBlock(item: MbppItem, withCode: boolean): string {
  const head = `You are an expert Python programmer, and here is your task: ${item.text} Your code should pass these tests:\n\n${item.tests.join('\n')}\n`;
  return withCode ? `${head}[BEGIN]\n${item.code}\n[DONE]\n` : `${head}[BEGIN]\n`;
}

const SHOTS = [2, 3, 4];
const SPLITS: Record<MbppSplit, [number, number]> = { all: [1, Infinity], prompt: [1, 10], test: [11, 510], validation: [511, 600], train: [601, 974] };

/** MBPP with the canonical 3-shot prompt (tasks 2, 3 and 4 as the shots, taken from the same file). */
export async function loadMbpp(path: string, opts: CodeLoadOptions = {}): Promise<TaskRecord[]> {
  const items: MbppItem[] = [];
  for (const row of await readJsonl(path, opts)) {
    try {
      items.push(mbppItem(row, path));
    } catch (e) {
      skipOrThrow(e, opts);
    }
  }
  const shots = SHOTS.map((id) => items.find((it) => it.id === id));
  if (shots.some((s) => s === undefined)) throw new TaskInputError(`${path}: the few-shot tasks ${SHOTS.join(', ')} of MBPP's prompt are not all in this file`);
  const prefix = shots.map((s) => mbppBlock(s!, true)).join('\n');
  const [lo, hi] = SPLITS[opts.split ?? 'all'];
  return items
    .filter((it) => it.id >= lo && it.id <= hi)
    .map((it) => ({
      id: `MBPP/${it.id}`,
      prompt: `${prefix}\n${mbppBlock(it, false)}`,
      answer: [it.setup, ...it.tests].filter((s) => s.trim() !== '').join('\n') + '\n',
      meta: { kind: 'mbpp', referenceCode: it.code, text: it.text },
    }));
}

export async function loadCodeData(path: string, opts: CodeLoadOptions = {}): Promise<TaskRecord[]> {
  let format = opts.format ?? 'auto';
  if (format === 'auto') {
    const first = (await readJsonl(path, { onBadLine: 'skip', warn: () => {} }))[0]!.value;
    if ('entry_point' in first) format = 'humaneval';
    else if ('test_list' in first) format = 'mbpp';
    else throw new TaskInputError(`${path}:1: neither HumanEval (entry_point) nor MBPP (test_list) fields; pass the format`);
  }
  const records = format === 'humaneval' ? await loadHumanEval(path, opts) : await loadMbpp(path, opts);
  if (records.length === 0) throw new TaskInputError(`${path}: no usable records`);
  return records;
}
