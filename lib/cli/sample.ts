// score-rl sample --model DIR (--prompt "ID ID ..." | --input FILE) [--n] [--temperature] [--top-p]
//                 [--top-k] [--max-new-tokens] [--seed] [--json]
// Token ids in and out (text once a tokenizer is wired to the checkpoint).
import { readFileSync } from 'node:fs';
import { loadModel } from '../model/model.js';
import { CliError, helpText, parseArgs, requireFlag, type FlagSpec } from './args.js';

const SPEC: FlagSpec = {
  model: { type: 'string', help: 'checkpoint folder' },
  prompt: { type: 'string', help: 'one prompt as space-separated token ids' },
  input: { type: 'string', help: 'JSON file {"prompts": [[id, ...], ...]}' },
  n: { type: 'number', help: 'samples per prompt', default: 1 },
  temperature: { type: 'number', help: 'sampling temperature (0 = greedy)', default: 1 },
  'top-p': { type: 'number', help: 'nucleus sampling mass in (0, 1]', default: 1 },
  'top-k': { type: 'number', help: 'keep the k most probable tokens (0 = off)', default: 0 },
  'max-new-tokens': { type: 'number', help: 'new tokens per sample', default: 64 },
  seed: { type: 'number', help: 'random seed', default: 0 },
  device: { type: 'string', help: 'cpu | cuda', default: 'cpu' },
  json: { type: 'boolean', help: 'print one JSON object' },
  help: { type: 'boolean', help: 'show this help' },
};

function prompts(flags: Record<string, unknown>): number[][] {
  if (flags.prompt !== undefined && flags.input !== undefined) throw new CliError('give --prompt or --input, not both');
  if (flags.prompt !== undefined) {
    const ids = String(flags.prompt).trim().split(/[\s,]+/).filter(Boolean).map(Number);
    if (ids.length === 0 || ids.some((x) => !Number.isInteger(x) || x < 0)) throw new CliError(`--prompt: expected space-separated token ids, got '${flags.prompt}'`);
    return [ids];
  }
  const path = requireFlag(flags as never, 'input');
  let doc: unknown;
  try {
    doc = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new CliError(`--input: cannot read '${path}': ${(e as Error).message}`);
  }
  const p = (doc as { prompts?: unknown })?.prompts;
  if (!Array.isArray(p) || p.some((r) => !Array.isArray(r))) throw new CliError(`${path}: field 'prompts' must be an array of arrays of token ids`);
  return p as number[][];
}

export async function run(args: string[]): Promise<number> {
  const { flags } = parseArgs(args, SPEC);
  if (flags.help) {
    console.log(helpText('usage: score-rl sample --model DIR (--prompt "IDS" | --input FILE) [options]', SPEC));
    return 0;
  }
  const dir = requireFlag(flags, 'model');
  const ps = prompts(flags);
  const model = await loadModel(dir, { device: flags.device as 'cpu' | 'cuda' });
  const ac = new AbortController();
  const onSigint = () => ac.abort();
  process.once('SIGINT', onSigint);
  try {
    const t0 = performance.now();
    const r = await model.generate(ps, {
      n: flags.n as number, temperature: flags.temperature as number, topP: flags['top-p'] as number,
      topK: flags['top-k'] as number, maxNewTokens: flags['max-new-tokens'] as number, seed: flags.seed as number,
      signal: ac.signal,
    });
    const secs = (performance.now() - t0) / 1e3;
    if (flags.json) console.log(JSON.stringify({ sequences: r.sequences, seconds: secs }));
    else {
      for (const s of r.sequences) console.log(`[${s.prompt}.${s.sample}] ${s.tokens.join(' ')}  (${s.finish})`);
      const total = r.sequences.reduce((a, s) => a + s.tokens.length, 0);
      console.error(`${total} tokens in ${secs.toFixed(2)} s (${(total / secs).toFixed(0)} tokens/s)`);
    }
  } finally {
    process.off('SIGINT', onSigint);
    model.dispose();
  }
  return 0;
}
