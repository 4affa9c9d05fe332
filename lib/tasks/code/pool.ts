// Runs sandboxed programs in parallel, a fixed number at a time. Each slot has a
// uid of its own, so one program's fork bomb cannot use up another's process limit.
import { availableParallelism } from 'node:os';
import { checkIsolation, detectIsolation, runProgram, uidBlock, type Isolation, type RunResult, type SandboxLimits } from './sandbox.js';

export interface PoolOptions {
  /** programs at a time (default: the number of cores) */
  concurrency?: number;
  limits?: Partial<SandboxLimits>;
  isolation?: Isolation;
  python?: string;
  /** import site in the sandboxed interpreter (default false) */
  site?: boolean;
}

export class SandboxPool {
  readonly concurrency: number;
  readonly isolation: Isolation;
  private freeSlots: number[];
  private waiting: Array<(slot: number) => void> = [];
  private closed = false;
  private uidBase: number;

  constructor(private opts: PoolOptions = {}) {
    this.concurrency = Math.max(1, Math.floor(opts.concurrency ?? availableParallelism()));
    this.isolation = opts.isolation === undefined ? detectIsolation(opts.python) : checkIsolation(opts.isolation);
    this.freeSlots = Array.from({ length: this.concurrency }, (_, i) => i);
    // uids far above any real account, a block per pool: pools in this process and in others differ
    this.uidBase = uidBlock();
  }

  /** The uid that slot `i` runs programs as (as root, except with user namespaces). */
  uidOf(slot: number): number {
    return this.uidBase + (slot % 256);
  }

  async run(program: string, tests: string, limits?: Partial<SandboxLimits>): Promise<RunResult> {
    if (this.closed) throw new Error('sandbox pool is closed');
    const slot = this.freeSlots.pop() ?? (await new Promise<number>((resolve) => this.waiting.push(resolve)));
    try {
      return await runProgram(program, tests, {
        limits: { ...this.opts.limits, ...limits },
        uid: this.uidOf(slot),
        isolation: this.isolation,
        ...(this.opts.python ? { python: this.opts.python } : {}),
        ...(this.opts.site ? { site: true } : {}),
      });
    } finally {
      const next = this.waiting.shift();
      if (next) next(slot);
      else this.freeSlots.push(slot);
    }
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}
