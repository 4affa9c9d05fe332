// score-rl sample --model DIR (--prompt TEXT | --input FILE) [--chat] [--n] [--temperature]
//                 [--top-p] [--top-k] [--max-new-tokens] [--seed] [--json]
// Text in and out when the checkpoint has a tokenizer.json; token ids otherwise.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadModel } from '../model/model.js';
import { loadTokenizer, type HfTokenizerFiles } from '../tokenizer/hf.js';
import { CliError, helpText, parseArgs, requireFlag, type FlagSpec } from './args.js';

const SPEC: FlagSpec = {
  model: { type: 'string', help: 'checkpoint folder' },
  prompt: { type: 'string', help: 'one prompt: text (token ids when the folder has no tokenizer.json)' },
  input: { type: 'string', help: 'JSON file {"prompts": [...]}: strings, or arrays of token ids' },
  chat: { type: 'boolean', help: "wrap each text prompt as a user turn in the tokenizer's chat template" },
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

type Prompt = string | number[];

function parseIds(s: string, what: string): number[] {
  const ids = s.trim().split(/[\s,]+/).filter(Boolean).map(Number);
  if (ids.length === 0 || ids.some((x) => !Number.isInteger(x) || x < 0))
    throw new CliError(`${what}: the checkpoint has no tokenizer.json, so a prompt is space-separated token ids; got '${s}'`);
  return ids;
}

function readPrompts(flags: Record<string, unknown>, hasTokenizer: boolean): Prompt[] {
  if (flags.prompt !== undefined && flags.input !== undefined) throw new CliError('give --prompt or --input, not both');
  if (flags.prompt !== undefined) {
    const s = String(flags.prompt);
    if (!hasTokenizer) return [parseIds(s, '--prompt')];
    if (s.length === 0) throw new CliError('--prompt is empty');
    return [s];
  }
  const path = requireFlag(flags as never, 'input');
  let doc: unknown;
  try {
    doc = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new CliError(`--input: cannot read '${path}': ${(e as Error).message}`);
  }
  const p = (doc as { prompts?: unknown })?.prompts;
  if (!Array.isArray(p) || p.length === 0) throw new CliError(`${path}: field 'prompts' must be a non-empty array`);
  p.forEach((r, i) => {
    const ids = Array.isArray(r) && r.every((x) => Number.isInteger(x) && x >= 0);
    if (!ids && !(typeof r === 'string' && r.length > 0))
      throw new CliError(`${path}: prompts[${i}] must be a non-empty string or an array of token ids`);
    if (typeof r === 'string' && !hasTokenizer) throw new CliError(`${path}: prompts[${i}] is text, but the checkpoint has no tokenizer.json (give token ids)`);
  });
  return p as Prompt[];
}

function encode(tok: HfTokenizerFiles | undefined, p: Prompt, chat: boolean): number[] {
  if (typeof p !== 'string') return p;
  const text = chat ? tok!.applyChatTemplate([{ role: 'user', content: p }], { addGenerationPrompt: true }) : p;
  // Llama-family tokenizers put BOS in front; a chat template writes its own.
  return tok!.encode(text, { addSpecialTokens: !chat });
}

export async function run(args: string[]): Promise<number> {
  const { flags } = parseArgs(args, SPEC);
  if (flags.help) {
    console.log(helpText('usage: score-rl sample --model DIR (--prompt TEXT | --input FILE) [options]', SPEC));
    return 0;
  }
  const dir = requireFlag(flags, 'model');
  const tok = existsSync(join(dir, 'tokenizer.json')) ? loadTokenizer(dir) : undefined;
  if (flags.chat && !tok?.chatTemplate) throw new CliError(`--chat: ${dir} has no chat template (tokenizer_config.json: chat_template)`);
  const ps = readPrompts(flags, tok !== undefined).map((p) => encode(tok, p, Boolean(flags.chat)));
  const model = await loadModel(dir, { device: flags.device as 'cpu' | 'cuda' });
  const ac = new AbortController();
  const onSigint = () => ac.abort();
  process.once('SIGINT', onSigint);
  try {
    const t0 = performance.now();
    const r = await model.generate(ps, {
      n: flags.n as number, temperature: flags.temperature as number, topP: flags['top-p'] as number,
      topK: flags['top-k'] as number, maxNewTokens: flags['max-new-tokens'] as number, seed: flags.seed as number,
      ...(tok?.eosTokenId !== undefined ? { eosId: tok.eosTokenId } : {}),
      signal: ac.signal,
    });
    const secs = (performance.now() - t0) / 1e3;
    const text = (ids: number[]) => tok?.decode(ids, { skipSpecialTokens: true });
    if (flags.json) console.log(JSON.stringify({ sequences: r.sequences.map((s) => ({ ...s, text: text(s.tokens) })), seconds: secs }));
    else {
      for (const s of r.sequences) console.log(`[${s.prompt}.${s.sample}] ${tok ? JSON.stringify(text(s.tokens)) : s.tokens.join(' ')}  (${s.finish})`);
      const total = r.sequences.reduce((a, s) => a + s.tokens.length, 0);
      console.error(`${total} tokens in ${secs.toFixed(2)} s (${(total / secs).toFixed(0)} tokens/s)`);
    }
  } finally {
    process.off('SIGINT', onSigint);
    model.dispose();
  }
  return 0;
}
