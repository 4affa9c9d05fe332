// score-rl logprobs --model DIR --input FILE
// FILE holds {"tokens": [[id, ...], ...]}; prints {"logprobs": [[...], ...]} where
// logprobs[b][t] = log p(tokens[b][t+1] | tokens[b][0..t]).
import { readFileSync } from 'node:fs';
import { loadModel } from '../model/model.js';
import { CliError, helpText, parseArgs, requireFlag, type FlagSpec } from './args.js';

const SPEC: FlagSpec = {
  model: { type: 'string', help: 'checkpoint folder (config.json + model.safetensors)' },
  input: { type: 'string', help: 'JSON file {"tokens": [[id, ...], ...]} ("-" for stdin)' },
  device: { type: 'string', help: 'cpu | cuda', default: 'cpu' },
  json: { type: 'boolean', help: 'output is always JSON; accepted for symmetry' },
  help: { type: 'boolean', help: 'show this help' },
};

function readTokens(path: string): number[][] {
  let text: string;
  try {
    text = readFileSync(path === '-' ? 0 : path, 'utf8');
  } catch (e) {
    throw new CliError(`--input: cannot read '${path}': ${(e as Error).message}`);
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw new CliError(`${path}: invalid JSON: ${(e as Error).message}`);
  }
  const tokens = (doc as { tokens?: unknown })?.tokens;
  if (!Array.isArray(tokens)) throw new CliError(`${path}: field 'tokens' must be an array of arrays of token ids`);
  tokens.forEach((row, b) => {
    if (!Array.isArray(row)) throw new CliError(`${path}: tokens[${b}] must be an array of token ids`);
    if (row.length < 2) throw new CliError(`${path}: tokens[${b}] needs at least 2 tokens to score`);
    row.forEach((id, t) => {
      if (!Number.isInteger(id) || id < 0) throw new CliError(`${path}: tokens[${b}][${t}] = ${JSON.stringify(id)} is not a token id`);
    });
  });
  if (tokens.length === 0) throw new CliError(`${path}: field 'tokens' is empty`);
  return tokens as number[][];
}

export async function run(args: string[]): Promise<number> {
  const { flags } = parseArgs(args, SPEC);
  if (flags.help) {
    console.log(helpText('usage: score-rl logprobs --model DIR --input FILE', SPEC));
    return 0;
  }
  const dir = requireFlag(flags, 'model');
  const input = requireFlag(flags, 'input');
  const tokens = readTokens(input);
  const model = await loadModel(dir, { device: flags.device as 'cpu' | 'cuda' });
  try {
    const r = await model.logprobs(tokens);
    console.log(JSON.stringify({ logprobs: r.rows() }));
  } finally {
    model.dispose();
  }
  return 0;
}
