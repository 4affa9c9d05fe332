// `score-rl eval --model DIR --task math|code --data FILE [--limit N]`: the two-attempt
// table of one checkpoint (greedy by default), with the control that tells
// self-correction from solving twice.
import { writeFileSync } from 'node:fs';
import { loadModel } from '../model/model.js';
import { evaluate, type Control } from '../eval/evaluate.js';
import { formatTable, reportJson } from '../eval/table.js';
import { inferenceScaling, type ScalingPoint } from '../eval/scaling.js';
import { CliError, helpText, parseArgs, requireFlag, type FlagSpec } from './args.js';
import { Progress } from './progress.js';
import { defaultInstruction, episodeFormatFor, loadRecords, openTask } from './setup.js';

const SPEC: FlagSpec = {
  model: { type: 'string', help: 'checkpoint folder (with tokenizer.json)' },
  task: { type: 'string', help: 'math | code' },
  data: { type: 'string', help: 'records to evaluate on' },
  limit: { type: 'number', help: 'first N records only (0 = all)', default: 0 },
  'max-new-tokens': { type: 'number', help: 'longest attempt, in tokens', default: 512 },
  temperature: { type: 'number', help: '0 = greedy', default: 0 },
  seed: { type: 'number', help: 'sampling seed (temperature > 0)', default: 0 },
  control: { type: 'string', help: "other | random | none: what replaces the first attempt in the control", default: 'other' },
  instruction: { type: 'string', help: "self-correction instruction (default: the paper's for the task)" },
  prompt: { type: 'string', help: "math prompt style: score | plain | a template with {problem}" },
  plain: { type: 'boolean', help: 'join turns as plain text even when the tokenizer has a chat template' },
  'batch-size': { type: 'number', help: 'problems per generation call', default: 64 },
  scaling: { type: 'string', help: 'also inference-time scaling for these budgets K, e.g. 2,4,8,16,32 (parallel majority vote vs K/2 self-corrected samples, temperature 0.7)' },
  samples: { type: 'string', help: 'write every problem\'s two attempts and verdicts to this jsonl file' },
  device: { type: 'string', help: 'cpu | cuda', default: 'cpu' },
  json: { type: 'boolean', help: 'print one JSON object instead of the table' },
  help: { type: 'boolean', help: 'show this help' },
};

export async function run(args: string[]): Promise<number> {
  const { flags } = parseArgs(args, SPEC);
  if (flags.help) {
    console.log(helpText('usage: score-rl eval --model DIR --task math|code --data FILE [options]', SPEC));
    return 0;
  }
  const dir = requireFlag(flags, 'model');
  const taskName = requireFlag(flags, 'task');
  const control = String(flags.control) as Control;
  if (!['other', 'random', 'none'].includes(control)) throw new CliError(`option '--control': '${control}' is not one of other, random, none`);
  for (const f of ['limit', 'max-new-tokens', 'batch-size'] as const) {
    const v = Number(flags[f]);
    if (!Number.isInteger(v) || v < (f === 'limit' ? 0 : 1)) throw new CliError(`option '--${f}': expected an integer >= ${f === 'limit' ? 0 : 1}, got ${flags[f]}`);
  }
  const budgets = flags.scaling === undefined ? undefined : String(flags.scaling).split(',').map(Number);
  for (const k of budgets ?? []) if (!(Number.isInteger(k) && k >= 2 && k % 2 === 0)) throw new CliError(`option '--scaling': budgets must be even integers >= 2, got ${k}`);
  const device = String(flags.device);
  if (device !== 'cpu' && device !== 'cuda') throw new CliError(`option '--device': '${device}' is not one of cpu, cuda`);
  const task = openTask(taskName, { prompt: flags.prompt as string | undefined });
  try {
    const records = await loadRecords(task, requireFlag(flags, 'data'), 'data', Number(flags.limit));
    const { format } = episodeFormatFor(dir, String(flags.instruction ?? defaultInstruction(taskName)), '\n\n', Boolean(flags.plain));
    const model = await loadModel(dir, { device: device as 'cpu' | 'cuda' });
    const progress = new Progress();
    try {
      const r = await evaluate({
        model, task, records, format, maxNewTokens: Number(flags['max-new-tokens']), temperature: Number(flags.temperature), seed: Number(flags.seed),
        batchSize: Number(flags['batch-size']), control, onProgress: (d, t) => progress.update(`eval: ${d}/${t} generations`),
      });
      progress.done();
      if (flags.samples) writeFileSync(String(flags.samples), r.samples.map((s) => JSON.stringify(s)).join('\n') + '\n');
      let scaling: ScalingPoint[] | undefined;
      if (budgets) {
        scaling = await inferenceScaling({ model, task, records, format, maxNewTokens: Number(flags['max-new-tokens']), budgets, seed: Number(flags.seed), onProgress: (d, t) => progress.update(`scaling: ${d}/${t} generations`) });
        progress.done();
      }
      if (flags.json) console.log(JSON.stringify({ ...reportJson(r), ...(scaling ? { scaling } : {}) }));
      else {
        console.log(formatTable([{ name: dir, report: r }]));
        if (scaling) {
          console.log('\ninference-time scaling (accuracy, temperature 0.7):\n     K  parallel (vote of K)  sequential (vote of K/2 second attempts)');
          for (const p of scaling) console.log(`${String(p.k).padStart(6)}  ${(100 * p.parallel).toFixed(1).padStart(20)}  ${(100 * p.sequential).toFixed(1).padStart(40)}`);
        }
      }
      return 0;
    } finally {
      model.dispose();
    }
  } finally {
    await task.close?.();
  }
}
