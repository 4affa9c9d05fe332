// `score-rl demo`: the built-in demo. Trains a small model from scratch on the
// parity task, then single-turn RL, SCoRe without Stage I, and SCoRe from the same
// base, and prints the paper's table; writes an HTML report and JSON.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { CliError, helpText, parseArgs, type FlagSpec } from './args.js';

const SPEC: FlagSpec = {
  quick: { type: 'boolean', help: 'a shorter run (about 2 minutes): fewer base and RL steps; same held-out size' },
  smoke: { type: 'boolean', help: 'a few steps of everything, for tests (seconds; the numbers mean nothing)' },
  json: { type: 'boolean', help: 'print the summary as one JSON object, the last line on stdout' },
  out: { type: 'string', help: 'keep the run here: config.json, base/, runs/<method>/ (metrics.jsonl, checkpoints), report.html, report.json (default: a new temporary folder)' },
  seed: { type: 'number', default: 0, help: 'seed of the problems, the model and every sample (same seed and threads: same table)' },
  ablations: { type: 'string', help: "'all' adds SCoRe without the progress bonus (alpha 0)" },
  bits: { type: 'number', help: 'input length in bits (default 12; 4096 different problems, 1000 of them held out)' },
  threads: { type: 'number', help: 'native threads (default: OMP_NUM_THREADS, else 1; one thread is fastest for this small model)' },
  help: { type: 'boolean', help: 'this text' },
};

const ABOUT = `usage: score-rl demo [options]

A small GPT (2 layers, d=128) is trained from scratch on this CPU, then taught to
correct itself with SCoRe (Kumar et al. 2024), next to the paper's baselines.

The task: the parity of 12 bits, answer first, then the working. For 0110 the
answer is "0:0100": the claimed parity, then the running parities of the bits.
The claim comes before any working and parity is hard for a small transformer in
one pass, so first attempts are right about half the time. The working ends with
the true parity, so a second attempt that reads the first can check the claim and
fix it: checking is easier than producing.

Phases: the base model (supervised: first attempts, then two-attempt transcripts
whose second attempt answers afresh, so it does not improve on the first); then
from that base, with the same number of sampled episodes each: single-turn RL,
SCoRe without Stage I, SCoRe (Stage I then Stage II, progress bonus alpha 3).
Each is evaluated greedily on 1000 held-out problems: Acc@t1, Acc@t2, Delta and
its parts i->c / c->i with 95% intervals, and the control Acc@t2 when the first
attempt is another problem's (equal to Acc@t2 when attempt 2 ignores attempt 1).
Ctrl-C stops after the current step.`;

export async function run(args: string[]): Promise<number> {
  const { flags } = parseArgs(args, SPEC);
  if (flags.help) {
    console.log(helpText(ABOUT, SPEC));
    return 0;
  }
  if (flags.ablations !== undefined && flags.ablations !== 'all') throw new CliError(`--ablations: expected 'all', got '${String(flags.ablations)}'`);
  const seed = flags.seed as number;
  if (!(Number.isInteger(seed) && seed >= 0)) throw new CliError(`--seed must be a non-negative integer, got ${seed}`);
  const bits = flags.bits as number | undefined;
  if (bits !== undefined && !(Number.isInteger(bits) && bits >= 11 && bits <= 24)) throw new CliError(`--bits must be an integer from 11 to 24 (1000 distinct held-out problems), got ${bits}`);
  const threads = (flags.threads as number | undefined) ?? (Number(process.env.OMP_NUM_THREADS) || 1);
  if (!(Number.isInteger(threads) && threads >= 1)) throw new CliError(`--threads must be a positive integer, got ${threads}`);
  // OpenMP reads this when the native addon loads, which happens below (after the imports).
  process.env.OMP_NUM_THREADS = String(threads);
  const { runDemo, summaryJson, SCALES } = await import('../demo/run.js');
  const { renderHtml, reportObject } = await import('../demo/report.js');
  const { formatTable } = await import('../eval/table.js');
  const { Progress } = await import('../demo/progress.js');

  const out = flags.out ? resolve(String(flags.out)) : mkdtempSync(join(tmpdir(), 'score-rl-demo-'));
  const scale = flags.smoke ? SCALES.smoke : flags.quick ? SCALES.quick : SCALES.default;
  const progress = new Progress();
  const controller = new AbortController();
  const onSigint = () => {
    if (controller.signal.aborted) process.exit(130);
    progress.line('stopping after the current step (Ctrl-C again to quit at once)');
    controller.abort();
  };
  process.on('SIGINT', onSigint);
  try {
    progress.line(`score-rl demo: seed ${seed}, ${threads} thread(s), run folder ${out}`);
    const r = await runDemo({
      scale, seed, out, bits, ablations: flags.ablations === 'all', threads, signal: controller.signal,
      onBase: (p) => progress.base(p),
      onPhase: (name, what) => progress.phase(name, what),
      onStep: (m, s, n) => progress.step(m, s, n),
      onEval: (m, e) => progress.evalPoint(m, e),
    });
    progress.end();
    writeFileSync(join(out, 'report.html'), renderHtml(r));
    writeFileSync(join(out, 'report.json'), JSON.stringify(reportObject(r), null, 1) + '\n');
    if (r.rows.length > 0) {
      console.log(formatTable(r.rows.map((row) => ({ name: row.method, report: row.report }))));
    }
    console.log(`${r.stopped ? 'stopped early; ' : ''}${r.seconds.toFixed(0)} s; report: ${join(out, 'report.html')}`);
    if (flags.json) console.log(JSON.stringify(summaryJson(r)));
    return r.stopped ? 130 : 0;
  } finally {
    process.off('SIGINT', onSigint);
  }
}
