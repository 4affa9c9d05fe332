// Reading jsonl data files with errors that name the file, line and field.
import { readFile, stat } from 'node:fs/promises';
import { TaskInputError } from './task.js';

export type OnBadLine = 'stop' | 'skip';

export interface JsonlOptions {
  /** 'stop' (default) throws on the first malformed line; 'skip' reports it through `warn` and goes on. */
  onBadLine?: OnBadLine;
  warn?: (message: string) => void;
}

export interface JsonlLine {
  line: number; // 1-based line number in the file
  value: Record<string, unknown>;
}

/** An error message with line breaks and other control characters escaped (\\n, \\r, \\u2028 as
 * \\u000a, ...), so that a message about a file stays on one line: V8's JSON.parse quotes the
 * offending source text, which may hold them. */
export function oneLine(msg: string): string {
  return msg.replace(/[\u0000-\u001f\u007f\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

export async function readText(path: string): Promise<string> {
  let info;
  try {
    info = await stat(path);
  } catch {
    throw new TaskInputError(`${path}: no such file`);
  }
  if (info.isDirectory()) throw new TaskInputError(`${path}: is a folder, expected a file`);
  return readFile(path, 'utf8');
}

/** Parse jsonl text: every non-blank line must be a JSON object. */
export function parseJsonl(text: string, file: string, opts: JsonlOptions = {}): JsonlLine[] {
  const out: JsonlLine[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i]!.replace(/\r$/, '');
    if (raw.trim() === '') continue;
    let value: unknown;
    let problem: string | undefined;
    try {
      value = JSON.parse(raw);
      if (value === null || typeof value !== 'object' || Array.isArray(value)) problem = 'expected a JSON object';
    } catch (e) {
      problem = `invalid JSON (${oneLine((e as Error).message)})`;
    }
    if (problem !== undefined) {
      const msg = `${file}:${i + 1}: ${problem}`;
      if (opts.onBadLine === 'skip') {
        (opts.warn ?? ((m: string) => process.stderr.write(`warning: ${m} (line skipped)\n`)))(msg);
        continue;
      }
      throw new TaskInputError(msg);
    }
    out.push({ line: i + 1, value: value as Record<string, unknown> });
  }
  return out;
}

export async function readJsonl(path: string, opts: JsonlOptions = {}): Promise<JsonlLine[]> {
  const rows = parseJsonl(await readText(path), path, opts);
  if (rows.length === 0) throw new TaskInputError(`${path}: empty data set (no records)`);
  return rows;
}

/** A required string field of a jsonl record, or a one-line error naming file, line and field. */
export function field(row: JsonlLine, name: string, file: string): string {
  const v = row.value[name];
  if (typeof v !== 'string') {
    const what = v === undefined ? 'missing' : `not a string (${Array.isArray(v) ? 'array' : typeof v})`;
    throw new TaskInputError(`${file}:${row.line}: field '${name}' is ${what}`);
  }
  return v;
}

/** With onBadLine 'skip', report a bad record through `warn` and go on; otherwise (or for
 * errors that are not about the data) throw. */
export function skipOrThrow(e: unknown, opts: JsonlOptions): void {
  if (!(e instanceof TaskInputError) || opts.onBadLine !== 'skip') throw e;
  (opts.warn ?? ((m: string) => process.stderr.write(`warning: ${m} (record skipped)\n`)))(e.message);
}
