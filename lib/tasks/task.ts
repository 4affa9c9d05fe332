// The contract between a task (a data set plus its verifier) and the SCoRe
// trainer / evaluator. A task turns a data file into records and says whether a
// model's completion solves a record. Nothing here knows about models.

/** One problem. `answer` is what the verifier compares against (a final answer for
 * math, the test code for code tasks); `meta` carries whatever else the task needs. */
export interface TaskRecord {
  id: string;
  prompt: string;
  answer: string;
  meta: Record<string, unknown>;
}

/** The verdict on one completion. `reason` is a short human-readable line. */
export interface Reward {
  correct: boolean;
  reason: string;
}

export interface Task {
  readonly name: string;
  /** Read the records of a data file or folder (format given by the task's options). */
  load(path: string): Promise<TaskRecord[]>;
  /** Grade a model completion (raw model text) against a record. Never throws on model text. */
  reward(completion: string, record: TaskRecord): Promise<Reward>;
  /** The final answer a completion gives (for majority voting), or null when it gives none.
   * Tasks without a notion of a final answer (code) leave it out. */
  answerOf?(completion: string): string | null;
  /** Whether two final answers are the same (for merging votes); default: equal strings. */
  sameAnswer?(a: string, b: string): boolean;
  /** Release resources (worker processes). Safe to call twice. */
  close?(): Promise<void>;
}

/** Bad input: a data file that is missing, empty or malformed. The message is one line
 * naming the file (and line/field where there is one). */
export class TaskInputError extends Error {
  readonly code = 'ERR_SCORE_TASK_INPUT';
}
