// The math task: records from MATH / MATH-500 / GSM8K, reward 1 when the answer
// extracted from the completion is equivalent to the gold answer.
import type { Reward, Task, TaskRecord } from '../task.js';
import { equivalent, type EquivOptions } from './equiv.js';
import { extractAnswer } from './extract.js';
import { loadMathData, type MathLoadOptions } from './load.js';

export interface MathTaskOptions extends MathLoadOptions, EquivOptions {}

/** The final answer of a completion: the extracted one, or a short one-line text with no
 * answer marker taken as the answer itself ("0.5"). */
function finalAnswer(completion: string): { answer: string; method: string } | undefined {
  const ex = extractAnswer(completion);
  if (ex) return ex;
  const bare = completion.trim();
  return bare !== '' && bare.length <= 200 && !bare.includes('\n') ? { answer: bare, method: 'whole-text' } : undefined;
}

/** Grade one completion (model text) against a gold answer. */
export function gradeMath(completion: string, gold: string, opts: EquivOptions = {}): Reward {
  const ex = finalAnswer(completion);
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

  answerOf(completion: string): string | null {
    return finalAnswer(completion)?.answer ?? null;
  }

  sameAnswer(a: string, b: string): boolean {
    return equivalent(a, b, this.opts).equal;
  }
}
