// What `train` and `eval` share: opening a task by name, its records, and the episode
// format for a checkpoint's tokenizer (chat template when it has one).
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CodeTask } from '../tasks/code/task.js';
import { MathTask } from '../tasks/math/task.js';
import type { Task, TaskRecord } from '../tasks/task.js';
import { loadTokenizer } from '../tokenizer/hf.js';
import { chatFormat, CODE_SELF_CORRECTION, MATH_SELF_CORRECTION, plainFormat, type EpisodeFormat } from '../rl/format.js';
import { CliError } from './args.js';

export const TASKS = ['math', 'code'] as const;
export type TaskName = (typeof TASKS)[number];

export function openTask(name: string, opts: { prompt?: string; timeoutMs?: number } = {}): Task {
  if (name === 'math') return new MathTask({ ...(opts.prompt ? { prompt: opts.prompt } : {}) });
  if (name === 'code') return new CodeTask(opts.timeoutMs ? { limits: { timeoutMs: opts.timeoutMs } } : {});
  throw new CliError(`option '--task': '${name}' is not one of ${TASKS.join(', ')}`);
}

export async function loadRecords(task: Task, path: string, flag: string, limit = 0): Promise<TaskRecord[]> {
  if (!existsSync(path)) throw new CliError(`option '--${flag}': ${path}: no such file or folder`);
  const recs = await task.load(path);
  if (recs.length === 0) throw new CliError(`option '--${flag}': ${path} holds no records`);
  return limit > 0 ? recs.slice(0, limit) : recs;
}

/** Task-specific defaults of the paper: lr 5e-6 and beta2 0.1 for math, 1e-5 and 0.25 for code. */
export function taskDefaults(name: string): { lr: number; beta2: number } {
  return name === 'code' ? { lr: 1e-5, beta2: 0.25 } : { lr: 5e-6, beta2: 0.1 };
}

export function defaultInstruction(name: string): string {
  return name === 'code' ? CODE_SELF_CORRECTION : MATH_SELF_CORRECTION;
}

/** The checkpoint's tokenizer and the episode format: chat turns with its template, else plain text. */
export function episodeFormatFor(modelDir: string, instruction: string, separator: string, plain: boolean): { format: EpisodeFormat; files: Record<string, string>; chat: boolean } {
  if (!existsSync(join(modelDir, 'tokenizer.json'))) throw new CliError(`${modelDir}: no tokenizer.json (train and eval need the checkpoint's tokenizer)`);
  const tok = loadTokenizer(modelDir);
  const files: Record<string, string> = {};
  for (const f of ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'generation_config.json'])
    if (existsSync(join(modelDir, f))) files[f] = readFileSync(join(modelDir, f), 'utf8');
  if (tok.chatTemplate && !plain) return { format: chatFormat(tok, (m, gen) => tok.applyChatTemplate(m, { addGenerationPrompt: gen }), instruction), files, chat: true };
  return { format: plainFormat(tok, { instruction, separator }), files, chat: false };
}
