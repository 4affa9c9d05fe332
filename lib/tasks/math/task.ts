// The math task: records from MATH / MATH-500 / GSM8K, reward 1 when the answer
// extracted from the completion is equivalent to the gold answer.
import type { Reward, Task, TaskRecord } from '../task.js';
import { equivalent, type EquivOptions } from './equiv.js';
import { extractAnswer } from './extract.js';
import { loadMathData, type MathLoadOptions } from './load.js';

export interface MathTaskOptions extends MathLoadOptions, EquivOptions {}

/** Grade one completion (model text) against a gold answer. */
export function gradeMath(completion: string, gold: string, opts: EquivOptions = {}): Reward {
  let ex = extractAnswer(completion);
  // a short one-line text with no answer marker is taken as the answer itself ("0.5")
  const bare = completion.trim();
  if (!ex && bare !== '' && bare.length <= 200 && !bare.includes('\n')) ex = { answer: bare, method: 'whole-text' };
  if (!ex) return { correct: false, reason: 'no final answer found' };
  const v = equivalent(ex.answer, gold, opts);
  return { correct: v.equal, reason: `${v.reason} (answer '${ex.answer.slice(0, 80)}' via ${ex.method})` };
}

export class MathTask implements Task {
  readonly name = 'math';
  constructor(private opts: MathTaskOptions = {}) {}

  load(path: string): Promise<TaskRecord[]> {
    return loadMathData(path, this.opts);
  }

  async reward(completion: string, record: TaskRecord): Promise<Reward> {
    return gradeMath(completion, record.answer, this.opts);
  }
}
