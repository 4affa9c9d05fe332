// `score-rl grade --task math|code --input FILE`: grade answers or programs from a
// jsonl file and print one jsonl verdict per input line, in order.
//   math lines: {"pred": model text or answer, "gold": reference answer}
//   code lines: {"program": code or model text, "tests": HumanEval check code or MBPP asserts, "entry_point"?: name}
import { readFileSync } from 'node:fs';
import { CodeTask } from '../tasks/code/task.js';
import { extractProgram, testsFor } from '../tasks/code/extract.js';
import { parseJsonl, readText } from '../tasks/jsonl.js';
import { gradeMath } from '../tasks/math/task.js';
import type { Reward } from '../tasks/task.js';
import { CliError, helpText, parseArgs, requireFlag, type FlagSpec } from './args.js';

const SPEC: FlagSpec = {
  task: { type: 'string', help: 'math | code' },
  input: { type: 'string', help: "jsonl file to grade ('-' reads standard input)" },
  json: { type: 'boolean', help: 'print the closing summary (on stderr) as JSON' },
  'on-bad-line': { type: 'string', help: "stop | skip: on a malformed line stop with an error, or answer it with correct:false and go on", default: 'stop' },
  'timeout-ms': { type: 'number', help: 'code: wall-clock limit per program in ms', default: 10_000 },
  concurrency: { type: 'number', help: 'code: programs run at a time (default: number of cores)' },
  help: { type: 'boolean', help: 'show this help' },
};
const USAGE = `usage: score-rl grade --task math|code --input FILE [--json]

Prints one line {"correct": true|false, "reason": "..."} per input line, in order.
  math lines: {"pred": "<model text or answer>", "gold": "<reference answer>"}
  code lines: {"program": "<code or model text>", "tests": "<HumanEval check() code or MBPP asserts>", "entry_point": "<optional>"}`;

type Job = { line: number; fields: Record<string, unknown> } | { line: number; error: string };

function requireString(fields: Record<string, unknown>, name: string, where: string): string {
  const v = fields[name];
  if (typeof v !== 'string') throw new CliError(`${where}: field '${name}' is ${v === undefined ? 'missing' : 'not a string'}`);
  return v;
}

export async function run(args: string[]): Promise<number> {
  const { flags } = parseArgs(args, SPEC);
  if (flags.help) {
    console.log(helpText(USAGE, SPEC));
    return 0;
  }
  const taskName = requireFlag(flags, 'task');
  if (taskName !== 'math' && taskName !== 'code') throw new CliError(`option '--task': '${taskName}' is not one of math, code`);
  const input = requireFlag(flags, 'input');
  const onBad = String(flags['on-bad-line']);
  if (onBad !== 'stop' && onBad !== 'skip') throw new CliError(`option '--on-bad-line': '${onBad}' is not one of stop, skip`);
  const name = input === '-' ? '<stdin>' : input;
  let text: string;
  try {
    text = input === '-' ? readFileSync(0, 'utf8') : await readText(input);
  } catch (e) {
    throw new CliError((e as Error).message);
  }

  // check every line first, so that a bad file fails (at its first bad line) before any output
  const needed = taskName === 'math' ? ['pred', 'gold'] : ['program', 'tests'];
  const jobs: Job[] = [];
  const rows = parseJsonl(text, name, { onBadLine: 'skip', warn: (m) => jobs.push({ line: Number(/:(\d+):/.exec(m.slice(name.length))?.[1] ?? 0), error: m }) });
  for (const row of rows) {
    try {
      for (const f of needed) requireString(row.value, f, `${name}:${row.line}`);
      jobs.push({ line: row.line, fields: row.value });
    } catch (e) {
      jobs.push({ line: row.line, error: (e as Error).message });
    }
  }
  jobs.sort((a, b) => a.line - b.line);
  for (const j of jobs) {
    if (!('error' in j)) continue;
    if (onBad === 'stop') throw new CliError(j.error);
    process.stderr.write(`warning: ${j.error}\n`);
  }
  if (jobs.length === 0) throw new CliError(`${name}: no lines to grade`);

  let results: Reward[];
  if (taskName === 'math') {
    results = jobs.map((j) => ('error' in j ? { correct: false, reason: `bad input: ${j.error}` } : gradeMath(j.fields.pred as string, j.fields.gold as string)));
  } else {
    const concurrency = flags.concurrency === undefined ? undefined : Number(flags.concurrency);
    const task = new CodeTask({ limits: { timeoutMs: Number(flags['timeout-ms']) }, ...(concurrency ? { concurrency } : {}) });
    results = await Promise.all(
      jobs.map(async (j): Promise<Reward> => {
        if ('error' in j) return { correct: false, reason: `bad input: ${j.error}` };
        const program = extractProgram(j.fields.program as string);
        const entry = typeof j.fields.entry_point === 'string' ? j.fields.entry_point : undefined;
        const r = await task.pool.run(program, testsFor(program, j.fields.tests as string, entry));
        return { correct: r.passed, reason: r.reason };
      }),
    );
    await task.close();
  }
  process.stdout.write(results.map((r) => JSON.stringify({ correct: r.correct, reason: r.reason })).join('\n') + '\n');
  const correct = results.filter((r) => r.correct).length;
  const summary = { task: taskName, lines: results.length, correct, accuracy: correct / results.length };
  process.stderr.write(flags.json ? `${JSON.stringify(summary)}\n` : `graded ${results.length} lines: ${correct} correct (${(100 * summary.accuracy).toFixed(1)}%)\n`);
  return 0;
}
