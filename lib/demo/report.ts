// The demo's report: one self-contained HTML page (inline CSS and SVG, no scripts,
// nothing fetched) with the table and three plots, and the same numbers as JSON.
import type { Estimate } from '../eval/metrics.js';
import { reportJson } from '../eval/table.js';
import type { DemoResult, DemoRow } from './run.js';

const COLORS: Record<string, string> = { base: '#6b7280', 'single-turn RL': '#d97706', 'w/o Stage I': '#2563eb', SCoRe: '#059669', 'w/o bonus': '#9333ea' };
const T1 = '#94a3b8', T2 = '#059669';

const esc = (s: string) => s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);
const pct = (x: number) => (100 * x).toFixed(1);
const ci = (e: Estimate) => `<span class="ci">[${pct(e.ci95[0])}, ${pct(e.ci95[1])}]</span>`;

/** Moving average, so that noisy per-step rewards read as a trend. */
function smooth(xs: number[], w: number): number[] {
  return xs.map((_, i) => {
    const lo = Math.max(0, i - w + 1);
    let s = 0;
    for (let j = lo; j <= i; j++) s += xs[j]!;
    return s / (i - lo + 1);
  });
}

interface Series {
  label: string;
  color: string;
  points: [number, number][];
  dash?: boolean;
}

/** A small line chart: x from 0 to xMax, y from 0 to 1, with axes, ticks and a legend. */
function lineChart(title: string, xLabel: string, series: Series[], xMax: number): string {
  const W = 330, H = 210, L = 38, R = 10, T = 26, B = 34;
  const px = (x: number) => L + (x / Math.max(1, xMax)) * (W - L - R);
  const py = (y: number) => T + (1 - Math.max(0, Math.min(1, y))) * (H - T - B);
  const grid = [0, 0.25, 0.5, 0.75, 1]
    .map((y) => `<line x1="${L}" x2="${W - R}" y1="${py(y)}" y2="${py(y)}" class="grid"/><text x="${L - 4}" y="${py(y) + 4}" class="tick" text-anchor="end">${Math.round(y * 100)}%</text>`)
    .join('');
  const xt = [0, 0.5, 1].map((f) => `<text x="${px(f * xMax)}" y="${H - B + 14}" class="tick" text-anchor="${f === 1 ? 'end' : 'middle'}">${Math.round(f * xMax).toLocaleString('en-US')}</text>`).join('');
  const lines = series
    .filter((s) => s.points.length > 0)
    .map((s) => `<polyline fill="none" stroke="${s.color}" stroke-width="2"${s.dash ? ' stroke-dasharray="5 3"' : ''} points="${s.points.map(([x, y]) => `${px(x).toFixed(1)},${py(y).toFixed(1)}`).join(' ')}"/>`)
    .join('');
  const legend = series.map((s, i) => `<g transform="translate(${L + 8 + i * 96},${T + 4})"><line x1="0" x2="14" y1="6" y2="6" stroke="${s.color}" stroke-width="2"${s.dash ? ' stroke-dasharray="5 3"' : ''}/><text x="18" y="10" class="legend">${esc(s.label)}</text></g>`).join('');
  return `<svg viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" role="img" aria-label="${esc(title)}"><text x="${L}" y="16" class="title">${esc(title)}</text>${grid}${xt}<text x="${(L + W - R) / 2}" y="${H - 4}" class="tick" text-anchor="middle">${esc(xLabel)}</text>${lines}${legend}</svg>`;
}

/** Training reward per attempt (moving average over 10 steps) against sampled episodes. */
function rewardChart(row: DemoRow): string {
  const per = row.steps[0]?.episodes ?? 1;
  const xMax = row.steps.length * per;
  const r1 = smooth(row.steps.map((m) => m.reward_t1), 10), r2 = smooth(row.steps.map((m) => m.reward_t2 ?? NaN), 10);
  const series: Series[] = [{ label: 'attempt 1', color: T1, points: r1.map((v, i) => [(i + 1) * per, v]) }];
  if (row.steps.some((m) => m.reward_t2 !== null)) series.push({ label: 'attempt 2', color: T2, points: r2.map((v, i) => [(i + 1) * per, v]) });
  const stage2 = row.steps.findIndex((m) => m.stage === 'II');
  const chart = lineChart(`${row.method}: training reward`, 'episodes', series, xMax);
  if (stage2 <= 0 || row.method === 'single-turn RL') return chart;
  // mark where Stage II starts
  const x = 38 + ((stage2 * per) / xMax) * (330 - 48);
  return chart.replace('</svg>', `<line x1="${x}" x2="${x}" y1="26" y2="176" class="stage"/><text x="${x + 3}" y="172" class="tick">Stage II</text></svg>`);
}

/** Greedy Acc@t1 / Acc@t2 on held-out problems during training, with the control. */
function accuracyChart(row: DemoRow, base: DemoRow | undefined): string {
  const per = row.steps[0]?.episodes ?? 1;
  const start = base ? [[0, base.report.accT1.value], [0, base.report.accT2.value], [0, base.report.accT2Control?.value ?? NaN]] : [];
  const pts = (f: (e: DemoRow['curve'][number]) => number | null, i: number): [number, number][] =>
    [...(start[i] ? [start[i] as [number, number]] : []), ...row.curve.map((e) => [e.step * per, f(e) ?? NaN] as [number, number])].filter(([, y]) => Number.isFinite(y));
  return lineChart(`${row.method}: held-out accuracy`, 'episodes', [
    { label: 'Acc@t1', color: T1, points: pts((e) => e.acc_t1, 0) },
    { label: 'Acc@t2', color: T2, points: pts((e) => e.acc_t2, 1) },
    { label: 't2, other y1', color: '#dc2626', dash: true, points: pts((e) => e.acc_t2_control, 2) },
  ], row.steps.length * per);
}

/** Delta i->c and Delta c->i per method, as horizontal bars with their 95% intervals. */
function transitionBars(rows: DemoRow[]): string {
  const W = 680, rowH = 34, L = 120, R = 60, T = 30;
  const H = T + rows.length * rowH + 28;
  const max = Math.max(0.1, ...rows.flatMap((r) => [r.report.deltaI2C.ci95[1], r.report.deltaC2I.ci95[1]]));
  const px = (v: number) => L + (v / max) * (W - L - R);
  const bars = rows
    .map((r, i) => {
      const y = T + i * rowH;
      const bar = (e: Estimate, dy: number, color: string, label: string) =>
        `<rect x="${L}" y="${y + dy}" width="${Math.max(0.5, px(e.value) - L).toFixed(1)}" height="12" fill="${color}"/>` +
        `<line x1="${px(e.ci95[0]).toFixed(1)}" x2="${px(e.ci95[1]).toFixed(1)}" y1="${y + dy + 6}" y2="${y + dy + 6}" stroke="#111" stroke-width="1"/>` +
        `<text x="${(px(e.ci95[1]) + 4).toFixed(1)}" y="${y + dy + 10}" class="tick">${label} ${pct(e.value)}%</text>`;
      return `<text x="${L - 8}" y="${y + 16}" class="legend" text-anchor="end">${esc(r.method)}</text>` + bar(r.report.deltaI2C, 0, '#059669', 'i→c') + bar(r.report.deltaC2I, 14, '#dc2626', 'c→i');
    })
    .join('');
  return `<svg viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" role="img" aria-label="wrong to right and right to wrong"><text x="${L}" y="18" class="title">Held-out problems that changed between attempts (95% intervals)</text>${bars}<line x1="${L}" x2="${L}" y1="${T - 4}" y2="${H - 24}" stroke="#111"/></svg>`;
}

function tableHtml(r: DemoResult): string {
  const head = ['method', 'Acc@t1', 'Acc@t2', 'Δ(t1,t2)', 'Δ i→c', 'Δ c→i', 'Acc@t2<br>other y1', 'edit<br>ratio', 'time'];
  const body = r.rows
    .map((row) => {
      const e = row.report;
      const d = e.delta.value;
      return `<tr><th><span class="dot" style="background:${COLORS[row.method]}"></span>${esc(row.method)}</th><td>${pct(e.accT1.value)} ${ci(e.accT1)}</td><td>${pct(e.accT2.value)} ${ci(e.accT2)}</td><td class="${d > 0 && e.delta.ci95[0] > 0 ? 'up' : d < 0 && e.delta.ci95[1] < 0 ? 'down' : ''}">${d >= 0 ? '+' : ''}${pct(d)} ${ci(e.delta)}</td><td>${pct(e.deltaI2C.value)} ${ci(e.deltaI2C)}</td><td>${pct(e.deltaC2I.value)} ${ci(e.deltaC2I)}</td><td>${e.accT2Control ? pct(e.accT2Control.value) : '–'}</td><td>${e.editRatio.toFixed(2)}</td><td>${row.seconds.toFixed(0)} s</td></tr>`;
    })
    .join('');
  return `<table><thead><tr>${head.map((h) => `<th>${h}</th>`).join('')}</tr></thead><tbody>${body}</tbody></table>`;
}

function examples(row: DemoRow | undefined): string {
  if (!row) return '';
  const pick = row.report.samples.filter((s) => !s.c1).slice(0, 4);
  if (pick.length === 0) return '';
  const li = pick.map((s) => `<li><code>${esc(s.id)}</code> attempt 1 <code class="${s.c1 ? 'ok' : 'bad'}">${esc(s.y1)}</code> → attempt 2 <code class="${s.c2 ? 'ok' : 'bad'}">${esc(s.y2)}</code></li>`).join('');
  return `<h2>Second attempts of ${esc(row.method)} after a wrong first attempt</h2><ul class="ex">${li}</ul>`;
}

export function renderHtml(r: DemoResult): string {
  const base = r.rows.find((x) => x.method === 'base');
  const trained = r.rows.filter((x) => x.method !== 'base');
  const score = r.rows.find((x) => x.method === 'SCoRe');
  const css = `body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;color:#111;margin:24px auto;max-width:1060px;padding:0 16px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:16px;margin:26px 0 8px}p{margin:6px 0;color:#333}
table{border-collapse:collapse;margin:10px 0;font-variant-numeric:tabular-nums}th,td{padding:5px 7px;border-bottom:1px solid #e5e7eb;text-align:right;white-space:nowrap}
thead th{font-weight:600;border-bottom:2px solid #111}tbody th{text-align:left;font-weight:600}.ci{color:#6b7280;font-size:12px}
.up{color:#047857;font-weight:600}.down{color:#b91c1c;font-weight:600}.dot{display:inline-block;width:10px;height:10px;border-radius:50%;margin-right:6px}
.charts{display:flex;flex-wrap:wrap;gap:8px}svg{background:#fafafa;border:1px solid #e5e7eb;border-radius:4px}
svg .title{font-size:12px;font-weight:600}svg .tick{font-size:10px;fill:#4b5563}svg .legend{font-size:11px}svg .grid{stroke:#e5e7eb}svg .stage{stroke:#9ca3af;stroke-dasharray:3 3}
code{font:12px ui-monospace,Menlo,monospace}code.ok{color:#047857}code.bad{color:#b91c1c}.ex{padding-left:18px}.meta{color:#6b7280;font-size:12px}`;
  const cfg = r.config as { task?: { minBits?: number }; episodesPerMethod?: number };
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>score-rl demo: self-correction on parity</title><style>${css}</style></head><body>
<h1>score-rl demo: a small model learns to correct itself</h1>
<p>Task: the parity of ${cfg.task?.minBits ?? '?'} bits, answer first, then the working (running parities), e.g. <code>0110=0:0100</code>. The claim comes before the working, so a first attempt gets it right about half the time; the working ends with the true parity, so a second attempt that <em>reads</em> the first can fix the claim. Each method starts from the same base model and samples ${(cfg.episodesPerMethod ?? 0).toLocaleString('en-US')} episodes; every number below is greedy decoding on ${r.heldout} held-out problems.</p>
<p class="meta">seed ${r.seed} · ${r.threads} thread(s) · ${r.seconds.toFixed(0)} s in all${r.stopped ? ' · <b>stopped early</b>' : ''} · base: ${r.base.stepsA} + ${r.base.stepsB} SFT steps (${r.base.seconds.toFixed(0)} s)</p>
<h2>The table (percent of held-out problems, 95% intervals)</h2>
${tableHtml(r)}
<p class="meta">Δ = Acc@t2 − Acc@t1 = Δ i→c − Δ c→i. “Other y1”: Acc@t2 when the first attempt is replaced by another problem’s first attempt; if it equals Acc@t2, the second attempt does not read the first. Edit ratio: edit distance between the attempts over their length (0 = unchanged).</p>
<h2>Training reward per attempt (moving average of 10 steps)</h2>
<div class="charts">${trained.map(rewardChart).join('')}</div>
<h2>Held-out accuracy during training (greedy; dashed: attempt 2 after another problem’s attempt 1)</h2>
<div class="charts">${trained.map((row) => accuracyChart(row, base)).join('')}</div>
<h2>Wrong → right and right → wrong</h2>
${transitionBars(r.rows)}
${examples(score)}
</body></html>
`;
}

/** Everything of the report as JSON: the summary rows plus intervals, counts, curves. */
export function reportObject(r: DemoResult) {
  return {
    seconds: r.seconds, heldout: r.heldout, seed: r.seed, threads: r.threads, stopped: r.stopped, base: r.base, config: r.config,
    rows: r.rows.map((row) => ({ method: row.method, run_seconds: row.seconds, ...reportJson(row.report), curve: row.curve, steps: row.steps })),
  };
}
