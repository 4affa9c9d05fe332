// The code task: records from HumanEval / MBPP; reward 1 when the program extracted
// from the completion passes every test in the sandbox.
import type { Reward, Task, TaskRecord } from '../task.js';
import { extractProgram, testsFor } from './extract.js';
import { loadCodeData, type CodeLoadOptions } from './load.js';
import { SandboxPool, type PoolOptions } from './pool.js';

export interface CodeTaskOptions extends CodeLoadOptions, PoolOptions {}

/** The program to run for a model completion of a record. HumanEval completions are
 * continuations of the prompt unless they bring their own definition of the entry point. */
export function programFor(completion: string, record: TaskRecord): string {
  const code = extractProgram(completion);
  if (record.meta.kind === 'humaneval') {
    const entry = String(record.meta.entryPoint);
    const definesEntry = new RegExp(`^def\\s+${entry}\\s*\\(`, 'm').test(code);
    return definesEntry ? `${record.prompt}\n\n${code}` : record.prompt + code;
  }
  return code;
}

export class CodeTask implements Task {
  readonly name = 'code';
  readonly pool: SandboxPool;
  constructor(private opts: CodeTaskOptions = {}) {
    this.pool = new SandboxPool(opts);
  }

  load(path: string): Promise<TaskRecord[]> {
    return loadCodeData(path, this.opts);
  }

  async reward(completion: string, record: TaskRecord): Promise<Reward> {
    const program = programFor(completion, record);
    const entry = record.meta.kind === 'humaneval' ? String(record.meta.entryPoint) : undefined;
    const r = await this.pool.run(program, testsFor(program, record.answer, entry));
    // a broken sandbox is not a wrong program: a reward of 0 would poison training
    if (r.sandboxError !== undefined) throw new Error(`sandbox: ${r.sandboxError}`);
    return { correct: r.passed, reason: r.reason };
  }

  close(): Promise<void> {
    return this.pool.close();
  }
}
