// The demo's built-in task: the parity of a bit string, answer first, then the working.
// Generated on the fly from a seed.
//
// A problem is a string of n bits b_1..b_n followed by '='. The answer states the
// parity of the string (the xor of all bits), then ':', then the working: the running
// parities p_i = b_1 xor ... xor b_i for i = 1..n, whose last entry p_n is the parity.
//   prompt  10110=      answer  1:11011
// The verifier accepts only the exact line (claim and working).
//
// Why this task: producing and checking are very different jobs for a small
// transformer that writes left to right without a scratchpad, as for a student who
// writes "the answer is X" before the derivation.
// - Producing: the claim comes first, before any working, and the parity of n bits
//   is a global property that a small transformer cannot compute in one pass (its
//   first attempts get the claim right about half the time). The working after it is
//   local (p_(i+1) = p_i xor b_(i+1)) and is learned reliably.
// - Checking a written attempt: its working ends with the true parity, so a second
//   attempt that reads the first can see whether the claim matched and copy the
//   right value from a fixed place. A second attempt that ignores the first (solves
//   again) gains nothing, which the random-first-attempt control of the evaluation
//   exposes: with another problem's attempt in its place, reading gives a coin flip.
// An earlier version (the answer written as suffix parities, so that a wrong attempt
// is the complement of the right one) needed the second attempt to learn a three-way
// xor from the reward alone; RL did not find it in 40k episodes (docs/demo.md).
import { mulberry32 } from '../rl/random.js';
import { CharTokenizer } from '../tokenizer/char.js';
import type { Reward, Task, TaskRecord } from '../tasks/task.js';
import { TaskInputError } from '../tasks/task.js';

export interface ParityOptions {
  /** shortest and longest input, in bits (inclusive) */
  minBits: number;
  maxBits: number;
}

// 12 bits: 4,096 different problems, so 1,000 distinct held-out problems leave 3,096
// for training, each seen about twice in a run: too few to memorise parities.
export const DEFAULT_PARITY_OPTIONS: ParityOptions = { minBits: 12, maxBits: 12 };

/** Every character the task's prompts, answers and instruction use. */
export const DEMO_ALPHABET = '01=:\n abcdefghijklmnopqrstuvwxyz?';
/** The self-correction turn, in plain words (the paper's instructions are for MATH and code). */
export const DEMO_INSTRUCTION = '?';
export const DEMO_SEPARATOR = '';

export function demoTokenizer(): CharTokenizer {
  return new CharTokenizer(DEMO_ALPHABET);
}

/** The running parities b_1, b_1 xor b_2, ..., as a string of '0'/'1'. */
export function runningParity(bits: string): string {
  let acc = 0, out = '';
  for (const b of bits) {
    acc ^= b === '1' ? 1 : 0;
    out += acc ? '1' : '0';
  }
  return out;
}

/** The right answer: the claim (the parity), ':', the working. */
export function parityAnswer(bits: string): string {
  const working = runningParity(bits);
  return `${working[working.length - 1]}:${working}`;
}

export function makeRecord(bits: string, id: string): TaskRecord {
  return { id, prompt: `${bits}=`, answer: parityAnswer(bits), meta: { bits } };
}

/** `count` problems from `seed`; the same seed and options give the same list. */
export function generateRecords(seed: number, count: number, opts: ParityOptions = DEFAULT_PARITY_OPTIONS): TaskRecord[] {
  if (!(opts.minBits >= 2 && opts.maxBits >= opts.minBits)) throw new RangeError(`bits must satisfy 2 <= minBits <= maxBits, got ${opts.minBits}..${opts.maxBits}`);
  const rnd = mulberry32(seed);
  const out: TaskRecord[] = [];
  for (let i = 0; i < count; i++) {
    const n = opts.minBits + Math.floor(rnd() * (opts.maxBits - opts.minBits + 1));
    let bits = '';
    for (let j = 0; j < n; j++) bits += rnd() < 0.5 ? '0' : '1';
    out.push(makeRecord(bits, `p${seed}-${i}`));
  }
  return out;
}

/** Distinct held-out problems and a training list that shares none of them. */
export function splitSets(seed: number, train: number, heldout: number, opts: ParityOptions = DEFAULT_PARITY_OPTIONS) {
  const seen = new Set<string>();
  const held: TaskRecord[] = [];
  for (const r of generateRecords(seed * 2 + 1, heldout * 2 + 64, opts)) {
    if (held.length === heldout) break;
    if (!seen.has(r.prompt)) held.push(r), seen.add(r.prompt);
  }
  if (held.length < heldout) throw new RangeError(`only ${held.length} distinct problems of this size; ask for fewer held-out problems or longer inputs`);
  // The training list is a stream (problems may repeat) that skips held-out problems; the
  // generator is prefix-stable, so drawing more keeps the list the same for the same seed.
  for (let draw = Math.ceil(train * 1.5) + 16; draw <= train * 64 + 1024; draw *= 2) {
    const pool = generateRecords(seed * 2 + 2, draw, opts).filter((r) => !seen.has(r.prompt));
    if (pool.length >= train) return { train: pool.slice(0, train), heldout: held };
  }
  throw new RangeError('too few problems of this size are left for training after the held-out set');
}

/** The verifier: the completion, up to its first newline, must be exactly the answer. */
export function gradeParity(completion: string, record: TaskRecord): Reward {
  const line = completion.split('\n', 1)[0]!.trim();
  if (line === record.answer) return { correct: true, reason: 'exact match' };
  if (line.length !== record.answer.length) return { correct: false, reason: `length ${line.length}, expected ${record.answer.length}` };
  const claimWrong = line[0] !== record.answer[0];
  let wrong = 0;
  for (let i = 1; i < line.length; i++) if (line[i] !== record.answer[i]) wrong++;
  return { correct: false, reason: [claimWrong ? 'wrong claim' : '', wrong ? `${wrong} wrong in the working` : ''].filter(Boolean).join(', ') };
}

/** The Task interface over the generator: `load("seed:count")` makes records. */
export class ParityTask implements Task {
  readonly name = 'parity';
  constructor(readonly options: ParityOptions = DEFAULT_PARITY_OPTIONS) {}

  async load(spec: string): Promise<TaskRecord[]> {
    const m = /^(\d+):(\d+)$/.exec(spec);
    if (!m) throw new TaskInputError(`parity: expected "SEED:COUNT", got '${spec}'`);
    return generateRecords(Number(m[1]), Number(m[2]), this.options);
  }

  async reward(completion: string, record: TaskRecord): Promise<Reward> {
    return gradeParity(completion, record);
  }
}
