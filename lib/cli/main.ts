#!/usr/bin/env node
// score-rl command line: `score-rl <command> [options]`. Each command lives in
// lib/cli/<command>.ts and exports `run(args): Promise<number>` (the exit code).
import { CliError } from './args.js';

const COMMANDS: Record<string, string> = {
  demo: 'the built-in demo: a small model learns to correct itself (SCoRe vs baselines), table + report',
  train: 'SCoRe (Stage I / II) or a baseline on a checkpoint and a task; resumable',
  eval: 'two-attempt evaluation: Acc@t1, Acc@t2, Delta, i->c, c->i with 95% intervals',
  init: 'create a randomly initialised checkpoint (gpt2 | llama | qwen2 presets)',
  logprobs: 'per-token log-probabilities of token sequences under a checkpoint',
  sample: 'generate from a checkpoint (KV cache; temperature, top-k, top-p)',
  grade: 'grade answers (math) or programs (code) from a jsonl file',
  bench: 'benchmarks: train | logprobs | sample (tokens/s, side by side with PyTorch when present)',
  inspect: 'what this build has: CPU features, threads, the CUDA backend and devices',
};

function usage(): string {
  const lines = ['usage: score-rl <command> [options]', '', 'commands:'];
  for (const [name, what] of Object.entries(COMMANDS)) lines.push(`  ${name.padEnd(10)} ${what}`);
  lines.push('', 'Run `score-rl <command> --help` for the options of one command.');
  return lines.join('\n');
}

async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  if (cmd === undefined || cmd === '--help' || cmd === '-h' || cmd === 'help') {
    console.log(usage());
    return cmd === undefined ? 1 : 0;
  }
  if (cmd === '--version') {
    const { createRequire } = await import('node:module');
    console.log(createRequire(import.meta.url)('../../package.json').version);
    return 0;
  }
  if (!(cmd in COMMANDS)) throw new CliError(`unknown command '${cmd}' (see score-rl --help)`);
  const mod = (await import(`./${cmd}.js`)) as { run(args: string[]): Promise<number> };
  return mod.run(rest);
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    const e = err as { message?: string; code?: string };
    console.error(`score-rl: error: ${e?.message ?? String(err)}`);
    if (process.env.SCORE_DEBUG && err instanceof Error) console.error(err.stack);
    process.exitCode = 2;
  },
);
