// Progress of the demo on stderr: on a terminal one live line per phase, rewritten in
// place; elsewhere (CI, pipes) plain lines every few steps, so logs stay short.
import type { BaseProgress } from './base.js';
import type { MethodName } from './run.js';
import type { EvalPoint, StepMetrics } from '../rl/trainer.js';

const fmtTime = (s: number) => (s >= 60 ? `${Math.floor(s / 60)}m${String(Math.round(s % 60)).padStart(2, '0')}s` : `${Math.round(s)}s`);

export class Progress {
  #live = false;
  #phaseStart = performance.now();
  readonly tty: boolean;

  constructor(private stream: NodeJS.WriteStream = process.stderr, private quiet = false) {
    this.tty = stream.isTTY === true;
  }

  #write(line: string, live: boolean): void {
    if (this.quiet) return;
    if (this.tty) {
      const width = this.stream.columns || 100;
      this.stream.write(`\r\x1b[2K${line.slice(0, width - 1)}${live ? '' : '\n'}`);
      this.#live = live;
    } else if (!live) this.stream.write(line + '\n');
  }

  /** A line that stays. */
  line(text: string): void {
    if (this.#live && this.tty) this.stream.write('\n');
    this.#live = false;
    this.#write(text, false);
  }

  phase(name: string, what: string): void {
    this.#phaseStart = performance.now();
    this.line(`== ${name}: ${what}`);
  }

  #eta(done: number, total: number): string {
    const el = (performance.now() - this.#phaseStart) / 1000;
    return done > 0 ? fmtTime((el / done) * (total - done)) : '?';
  }

  base(p: BaseProgress): void {
    const acc = p.probeAccuracy !== undefined ? `  probe Acc@t1 ${(100 * p.probeAccuracy).toFixed(1)}%` : '';
    const text = `[base ${p.phase === 'A' ? 'first attempts' : 'transcripts'}] step ${p.step}/${p.steps}  loss ${p.loss.toFixed(3)}  ${Math.round(p.tokensPerS).toLocaleString('en-US')} tok/s${acc}  ETA ${p.phase === 'A' ? '<= ' : ''}${this.#eta(p.step, p.steps)}`; // phase A usually stops early
    this.#write(text, !(p.probeAccuracy !== undefined || p.step === p.steps));
  }

  step(method: MethodName, m: StepMetrics, steps: number): void {
    const r2 = m.reward_t2 === null ? '' : `  r2 ${m.reward_t2.toFixed(2)}`;
    const text = `[${method}] step ${m.step}/${steps} stage ${m.stage}  r1 ${m.reward_t1.toFixed(2)}${r2}  ${Math.round(m.tokens_per_s).toLocaleString('en-US')} tok/s  ETA ${this.#eta(m.step, steps)}`;
    this.#write(text, !(m.step % 25 === 0 || m.step === steps));
  }

  evalPoint(method: MethodName, e: EvalPoint): void {
    const ctl = e.acc_t2_control === null ? '' : `  (t2 with another problem's y1: ${(100 * e.acc_t2_control).toFixed(1)}%)`;
    this.line(`[${method}] eval at step ${e.step}: Acc@t1 ${(100 * e.acc_t1).toFixed(1)}%  Acc@t2 ${(100 * e.acc_t2).toFixed(1)}%${ctl}`);
  }

  end(): void {
    if (this.#live && this.tty) this.stream.write('\n');
    this.#live = false;
  }
}
