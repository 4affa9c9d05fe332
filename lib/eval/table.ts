// The paper's table: rows of methods (or checkpoints), columns Acc@t1, Acc@t2, Delta,
// Delta i->c, Delta c->i (percent of all problems, 95% intervals), and the control.
import type { EvalReport } from './evaluate.js';
import type { Estimate } from './metrics.js';

const pct = (x: number) => (100 * x).toFixed(1);
const withCi = (e: Estimate) => `${pct(e.value)} [${pct(e.ci95[0])}, ${pct(e.ci95[1])}]`;
const signed = (e: Estimate) => `${e.value >= 0 ? '+' : ''}${pct(e.value)} [${pct(e.ci95[0])}, ${pct(e.ci95[1])}]`;

export function formatTable(rows: { name: string; report: EvalReport }[]): string {
  const head = ['', 'Acc@t1', 'Acc@t2', 'Delta(t1,t2)', 'Delta i->c', 'Delta c->i', 'Acc@t2 (control)', 'edit'];
  const body = rows.map(({ name, report: r }) => [
    name, withCi(r.accT1), withCi(r.accT2), signed(r.delta), withCi(r.deltaI2C), withCi(r.deltaC2I),
    r.accT2Control ? `${pct(r.accT2Control.value)} (${r.control})` : '-', r.editRatio.toFixed(2),
  ]);
  const all = [head, ...body];
  const widths = head.map((_, j) => Math.max(...all.map((r) => r[j]!.length)));
  const line = (r: string[]) => r.map((c, j) => (j === 0 ? c.padEnd(widths[j]!) : c.padStart(widths[j]!))).join('  ');
  const n = rows[0]?.report.n ?? 0;
  return [line(head), ...body.map(line), `(percent of ${n} problems, 95% intervals; control: Acc@t2 with another problem's first attempt in place of the model's own; edit: edit-distance ratio between attempts)`].join('\n');
}

/** The numbers of one report as plain JSON (fractions). */
export function reportJson(r: EvalReport) {
  return {
    n: r.n, acc_t1: r.accT1.value, acc_t2: r.accT2.value, delta: r.delta.value, delta_i2c: r.deltaI2C.value, delta_c2i: r.deltaC2I.value,
    acc_t1_ci95: r.accT1.ci95, acc_t2_ci95: r.accT2.ci95, delta_ci95: r.delta.ci95, delta_i2c_ci95: r.deltaI2C.ci95, delta_c2i_ci95: r.deltaC2I.ci95,
    counts: r.counts, control: r.control, acc_t2_control: r.accT2Control?.value ?? null, edit_ratio: r.editRatio, mean_len_t1: r.meanLen1, mean_len_t2: r.meanLen2, seconds: r.seconds,
  };
}
