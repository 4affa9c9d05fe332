// `score-rl train`: SCoRe (or a baseline) on a checkpoint and a task, into a run folder.
//   score-rl train --model DIR --task math --data FILE --out RUN [--eval-data FILE] [--config run.json] [--<key> value ...]
//   score-rl train --out RUN --resume
// Every key of the config schema is also a flag (stage1Steps <-> --stage1-steps).
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadModel } from '../model/model.js';
import { flagName, resolveConfig, TRAIN_SCHEMA, validateConfig, type TrainConfig } from '../rl/config.js';
import { writeJsonAtomic, ensureDir } from '../rl/files.js';
import { train, type StepMetrics } from '../rl/trainer.js';
import { CliError, helpText, parseArgs, requireFlag, type FlagSpec } from './args.js';
import { formatSeconds, interruptSignal, Progress } from './progress.js';
import { defaultInstruction, episodeFormatFor, loadRecords, openTask, taskDefaults } from './setup.js';

/** What the run was started with, besides the training config (kept in the run folder for --resume). */
interface RunArgs {
  model: string;
  task: string;
  data: string;
  evalData?: string;
  evalLimit?: number;
  prompt?: string;
  plain: boolean;
  device: 'cpu' | 'cuda';
}

const RUN_SPEC: FlagSpec = {
  model: { type: 'string', help: 'checkpoint folder to start from (also the frozen reference)' },
  task: { type: 'string', help: 'math | code' },
  data: { type: 'string', help: 'training records (MATH folder, MATH/GSM8K jsonl, HumanEval/MBPP jsonl)' },
  'eval-data': { type: 'string', help: 'held-out records for the evaluations during and after training' },
  out: { type: 'string', help: 'run folder (config.json, metrics.jsonl, samples.jsonl, evals.jsonl, checkpoints/)' },
  config: { type: 'string', help: 'JSON file of training settings (keys below, camelCase); flags override it' },
  resume: { type: 'boolean', help: 'continue the run in --out from its latest checkpoint' },
  prompt: { type: 'string', help: 'math prompt style: score (the paper\'s, default) | plain | a template with {problem}' },
  plain: { type: 'boolean', help: 'join turns as plain text even when the tokenizer has a chat template' },
  device: { type: 'string', help: 'cpu | cuda', default: 'cpu' },
  help: { type: 'boolean', help: 'show this help' },
};

const CONFIG_SPEC: FlagSpec = Object.fromEntries(
  Object.entries(TRAIN_SCHEMA).map(([k, f]) => [flagName(k), { type: f.type === 'boolean' ? 'boolean' : f.type === 'integer' || f.type === 'number' ? 'number' : 'string', help: f.help }]),
) as FlagSpec;

const USAGE = `usage: score-rl train --model DIR --task math|code --data FILE --out RUN [options]
       score-rl train --out RUN --resume

SCoRe (Kumar et al. 2024): Stage I trains the second attempt with a strong KL on the first
(beta2), Stage II trains both with the progress bonus alpha (r2 - r1). Baselines are flags:
--single-turn (single-turn RL), --stage1-steps 0 (no Stage I), --alpha 0 (no reward shaping),
--stage1-steps 0 --alpha 0 (plain multi-turn RL). Ctrl-C writes a checkpoint and stops.`;

export async function run(args: string[]): Promise<number> {
  const { flags } = parseArgs(args, { ...RUN_SPEC, ...CONFIG_SPEC });
  if (flags.help) {
    console.log(helpText(USAGE, { ...RUN_SPEC, ...CONFIG_SPEC }));
    return 0;
  }
  const out = requireFlag(flags, 'out');
  const fromFlags: Record<string, unknown> = {};
  for (const k of Object.keys(TRAIN_SCHEMA)) if (flags[flagName(k)] !== undefined) fromFlags[k] = flags[flagName(k)];
  const cliLayer = validateConfig(fromFlags, 'flags');

  let runArgs: RunArgs;
  let config: TrainConfig;
  if (flags.resume) {
    const saved = join(out, 'run.json');
    if (!existsSync(saved)) throw new CliError(`--resume: ${out} has no run.json (not a run folder)`);
    for (const f of ['model', 'task', 'data', 'eval-data', 'config']) if (flags[f] !== undefined) throw new CliError(`--resume takes the run's settings from ${saved}; drop --${f}`);
    if (Object.keys(fromFlags).length) throw new CliError(`--resume takes the run's settings from ${saved}; drop --${flagName(Object.keys(fromFlags)[0]!)}`);
    const doc = JSON.parse(readFileSync(saved, 'utf8')) as { args: RunArgs; config: unknown };
    runArgs = doc.args;
    config = resolveConfig(validateConfig(doc.config, saved));
  } else {
    runArgs = {
      model: requireFlag(flags, 'model'), task: requireFlag(flags, 'task'), data: requireFlag(flags, 'data'),
      ...(flags['eval-data'] ? { evalData: String(flags['eval-data']) } : {}),
      ...(flags.prompt ? { prompt: String(flags.prompt) } : {}),
      plain: Boolean(flags.plain), device: String(flags.device) as 'cpu' | 'cuda',
    };
    if (runArgs.device !== 'cpu' && runArgs.device !== 'cuda') throw new CliError(`option '--device': '${runArgs.device}' is not one of cpu, cuda`);
    let fileLayer = {};
    if (flags.config) {
      const path = String(flags.config);
      let doc: unknown;
      try {
        doc = JSON.parse(readFileSync(path, 'utf8'));
      } catch (e) {
        throw new CliError(`option '--config': cannot read ${path}: ${(e as Error).message.split('\n')[0]}`);
      }
      fileLayer = validateConfig(doc, path);
    }
    config = resolveConfig(taskDefaults(runArgs.task), { instruction: defaultInstruction(runArgs.task) }, fileLayer, cliLayer);
    if (existsSync(join(out, 'run.json'))) throw new CliError(`${out} holds a run already: add --resume to continue it, or choose a new --out`);
  }

  const task = openTask(runArgs.task, { prompt: runArgs.prompt });
  const progress = new Progress();
  try {
    const trainSet = await loadRecords(task, runArgs.data, 'data');
    const evalSet = runArgs.evalData ? await loadRecords(task, runArgs.evalData, 'eval-data') : undefined;
    const { format, files, chat } = episodeFormatFor(runArgs.model, config.instruction, config.separator, runArgs.plain);
    const policy = await loadModel(runArgs.model, { device: runArgs.device });
    const reference = await policy.clone();
    ensureDir(out);
    if (!flags.resume) writeJsonAtomic(join(out, 'run.json'), { args: runArgs, config });
    const total = config.rounds * (config.stage1Steps + config.stage2Steps);
    progress.log(`score-rl train: ${trainSet.length} training records, ${evalSet?.length ?? 0} held out; ${total} steps x ${config.promptsPerStep * config.k} episodes; ${chat ? 'chat template' : 'plain turns'}; ${policy.device}`);
    const stop = interruptSignal(() => progress.log('stopping after this step and writing a checkpoint (Ctrl-C again to quit at once)'));
    const t0 = Date.now();
    let first = -1;
    const onStep = (m: StepMetrics) => {
      if (first < 0) first = m.step - 1;
      if (m.skipped) progress.log(`step ${m.step}: the gradient is not finite (loss ${m.loss}, norm ${m.grad_norm}): step skipped, weights and optimizer state unchanged`);
      const eta = ((Date.now() - t0) / 1000 / (m.step - first)) * (total - m.step);
      const r2 = m.reward_t2 === null ? '' : ` r2 ${m.reward_t2.toFixed(3)}`;
      progress.update(`step ${m.step}/${total} [${m.stage}] r1 ${m.reward_t1.toFixed(3)}${r2} kl ${m.kl_t1.toExponential(1)} | ${m.tokens_per_s.toFixed(0)} tok/s | ETA ${formatSeconds(eta)}`);
    };
    try {
      const r = await train({
        policy, reference, task, train: trainSet, evalSet, format, config, out, resume: Boolean(flags.resume), checkpointFiles: files, signal: stop.signal, onStep,
        onEval: (e) => progress.log(`eval @${e.step}: Acc@t1 ${(100 * e.acc_t1).toFixed(1)}  Acc@t2 ${(100 * e.acc_t2).toFixed(1)}  Delta ${(100 * e.delta).toFixed(1)}  i->c ${(100 * e.delta_i2c).toFixed(1)}  c->i ${(100 * e.delta_c2i).toFixed(1)}  (n=${e.n})`),
      });
      progress.done();
      progress.log(r.stopped ? `stopped at step ${r.steps}; checkpoint written. Continue with: score-rl train --out ${out} --resume` : `done: ${r.steps} steps; best training reward at step ${r.best?.step ?? '-'}; run folder ${out}`);
      return r.stopped ? 130 : 0;
    } finally {
      stop.dispose();
      policy.dispose();
      reference.dispose();
    }
  } finally {
    await task.close?.();
  }
}
