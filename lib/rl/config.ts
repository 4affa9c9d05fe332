// The training configuration: one schema gives the defaults, the validation of a
// config file (every unknown or ill-typed key is an error naming it), the CLI flags
// (--stage1-steps for stage1Steps) and the help text.
import { ScoreError } from '../model/errors.js';

type Field =
  | { type: 'integer' | 'number'; default: number; min?: number; max?: number; help: string }
  | { type: 'boolean'; default: boolean; help: string }
  | { type: 'string'; default: string; help: string }
  | { type: 'enum'; values: readonly string[]; default: string; help: string };

export const TRAIN_SCHEMA = {
  seed: { type: 'integer', default: 0, min: 0, help: 'seed of data order, sampling and everything random' },
  stage1Steps: { type: 'integer', default: 50, min: 0, help: 'Stage I steps per round (0: no Stage I)' },
  stage2Steps: { type: 'integer', default: 150, min: 0, help: 'Stage II steps per round' },
  rounds: { type: 'integer', default: 1, min: 1, help: 'repeat Stage I then Stage II this many times (the paper v1 used 2)' },
  singleTurn: { type: 'boolean', default: false, help: 'single-turn RL baseline: train only the first attempt, on r1' },
  alpha: { type: 'number', default: 10, min: 0, help: 'progress bonus alpha in r2 + alpha (r2 - r1) (0: no shaping)' },
  beta1: { type: 'number', default: 0.01, min: 0, help: 'KL weight of the trained turns' },
  beta2: { type: 'number', default: 0.1, min: 0, help: 'KL weight of the first turn in Stage I (paper: 0.1 math, 0.25 code)' },
  kl: { type: 'enum', values: ['k1', 'k3'], default: 'k1', help: 'KL estimator: k1 = logp - ref, k3 = exp(ref - logp) - (ref - logp) - 1' },
  k: { type: 'integer', default: 4, min: 2, help: 'samples per prompt (RLOO group)' },
  promptsPerStep: { type: 'integer', default: 8, min: 1, help: 'prompts per step (episodes per step = promptsPerStep * k)' },
  lr: { type: 'number', default: 5e-6, min: 0, help: 'learning rate (paper: 5e-6 math, 1e-5 code)' },
  adamBeta1: { type: 'number', default: 0.9, min: 0, max: 1, help: 'Adam beta1' },
  adamBeta2: { type: 'number', default: 0.999, min: 0, max: 1, help: 'Adam beta2' },
  weightDecay: { type: 'number', default: 0, min: 0, help: 'AdamW decoupled weight decay' },
  maxGradNorm: { type: 'number', default: 1, min: 0, help: 'global gradient-norm clipping (0: none)' },
  clipEps: { type: 'number', default: 0, min: 0, help: 'PPO-style ratio clipping epsilon (0: plain REINFORCE)' },
  normalize: { type: 'enum', values: ['token', 'sequence'], default: 'token', help: 'loss normalisation: per token, or per sequence then over sequences' },
  temperature: { type: 'number', default: 1, min: 0, help: 'sampling temperature in training' },
  topP: { type: 'number', default: 1, min: 0, max: 1, help: 'nucleus sampling in training (1: off)' },
  maxNewTokens: { type: 'integer', default: 512, min: 1, help: 'longest attempt, in tokens' },
  microBatchTokens: { type: 'integer', default: 0, min: 0, help: 'run the RL step in micro-batches of this many padded tokens (0: one batch)' },
  instruction: { type: 'string', default: '', help: "self-correction instruction (default: the paper's for the task)" },
  separator: { type: 'string', default: '\n\n', help: 'text around the instruction when the tokenizer has no chat template' },
  evalEvery: { type: 'integer', default: 0, min: 0, help: 'evaluate every N steps (0: only at the end, when an eval set is given)' },
  evalLimit: { type: 'integer', default: 0, min: 0, help: 'problems per evaluation (0: all)' },
  checkpointEvery: { type: 'integer', default: 50, min: 0, help: 'checkpoint every N steps (0: only at the end)' },
  keepCheckpoints: { type: 'integer', default: 2, min: 1, help: 'latest checkpoints kept (the best one is always kept)' },
  samplesPerStep: { type: 'integer', default: 2, min: 0, help: 'episodes per step written to samples.jsonl' },
  nonFinite: { type: 'enum', values: ['skip', 'stop'], default: 'skip', help: 'a step whose gradient is NaN/Inf: skip it (weights and optimizer state untouched) or stop the run' },
  maxSkippedSteps: { type: 'integer', default: 5, min: 1, help: 'stop after this many skipped steps in a row' },
} as const satisfies Record<string, Field>;

type Value<F> = F extends { type: 'boolean' } ? boolean : F extends { type: 'integer' | 'number' } ? number : string;
export type TrainConfig = { -readonly [K in keyof typeof TRAIN_SCHEMA]: Value<(typeof TRAIN_SCHEMA)[K]> } & { kl: 'k1' | 'k3'; normalize: 'token' | 'sequence'; nonFinite: 'skip' | 'stop' };

export class ConfigError extends ScoreError {
  constructor(message: string) {
    super('ERR_SCORE_CONFIG', message);
  }
}

export function defaultConfig(): TrainConfig {
  const c: Record<string, unknown> = {};
  for (const [k, f] of Object.entries(TRAIN_SCHEMA)) c[k] = f.default;
  return c as TrainConfig;
}

/** Checks every key of `obj` against the schema; `source` names where it came from ("run.json"). */
export function validateConfig(obj: unknown, source: string): Partial<TrainConfig> {
  if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) throw new ConfigError(`${source}: expected a JSON object`);
  const out: Record<string, unknown> = {};
  for (const [key, v] of Object.entries(obj as Record<string, unknown>)) {
    const f = (TRAIN_SCHEMA as Record<string, Field>)[key];
    if (!f) throw new ConfigError(`${source}: unknown key '${key}'`);
    out[key] = checkValue(f, v, `${source}: key '${key}'`);
  }
  return out as Partial<TrainConfig>;
}

function checkValue(f: Field, v: unknown, where: string): unknown {
  switch (f.type) {
    case 'boolean':
      if (typeof v !== 'boolean') throw new ConfigError(`${where} must be true or false, got ${JSON.stringify(v)}`);
      return v;
    case 'string':
      if (typeof v !== 'string') throw new ConfigError(`${where} must be a string, got ${JSON.stringify(v)}`);
      return v;
    case 'enum':
      if (typeof v !== 'string' || !f.values.includes(v)) throw new ConfigError(`${where} must be one of ${f.values.join(', ')}, got ${JSON.stringify(v)}`);
      return v;
    default: {
      if (typeof v !== 'number' || !Number.isFinite(v)) throw new ConfigError(`${where} must be a number, got ${JSON.stringify(v)}`);
      if (f.type === 'integer' && !Number.isInteger(v)) throw new ConfigError(`${where} must be an integer, got ${v}`);
      if (f.min !== undefined && v < f.min) throw new ConfigError(`${where} must be >= ${f.min}, got ${v}`);
      if (f.max !== undefined && v > f.max) throw new ConfigError(`${where} must be <= ${f.max}, got ${v}`);
      return v;
    }
  }
}

/** Defaults, then each layer in order (task defaults, config file, flags), all validated. */
export function resolveConfig(...layers: Partial<TrainConfig>[]): TrainConfig {
  const c = Object.assign(defaultConfig(), ...layers) as TrainConfig;
  validateConfig(c, 'config');
  if (c.stage1Steps + c.stage2Steps === 0) throw new ConfigError('config: stage1Steps + stage2Steps must be > 0');
  return c;
}

/** `stage1Steps` <-> `--stage1-steps`. */
export const flagName = (key: string) => key.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase());

/** The stage of every step: rounds x (Stage I x stage1Steps, then Stage II x stage2Steps).
 * Single-turn RL has no stages: every step is trained the same way (reported as 'II'). */
export function schedule(c: TrainConfig): ('I' | 'II')[] {
  const one: ('I' | 'II')[] = c.singleTurn
    ? Array<'II'>(c.stage1Steps + c.stage2Steps).fill('II')
    : [...Array<'I'>(c.stage1Steps).fill('I'), ...Array<'II'>(c.stage2Steps).fill('II')];
  return Array.from({ length: c.rounds }, () => one).flat();
}
