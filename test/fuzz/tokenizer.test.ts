// Property tests for the tokenizer loader (lib/tokenizer/hf.ts loadTokenizer):
// tokenizer.json, tokenizer_config.json and config.json of two real tokenizer
// shapes (byte-level BPE as in GPT-2/Qwen2, SentencePiece-style BPE with byte
// fallback as in Llama), mutated with a seeded mutator (test/fuzz/mutate.ts).
// For every mutated folder, loadTokenizer either returns a tokenizer or throws
// TokenizerError (code ERR_SCORE_TOKENIZER) with a one-line message naming the
// file; never another exception, never a hang. A tokenizer that loads must
// also give a sane vocabSize and encode/decode plain text, or fail there with
// TokenizerError. Bounded by FUZZ_TS_MS per property.
import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { byteToChar, loadTokenizer } from '../../lib/tokenizer/index.js';
import { baseSeed, below, budgetMs, checkTypedError, mutateJson, mutateText, pick, rng, type Rng } from './mutate.js';

const CODE = 'ERR_SCORE_TOKENIZER';
const PER_CASE_MS = 3000;
const work = mkdtempSync(join(tmpdir(), 'score-rl-fuzz-tok-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const CHATML =
  "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}{% endfor %}" +
  "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

/** A small GPT-2/Qwen2-shaped byte-level BPE: the 256 byte symbols, a few merges, `extra` filler tokens. */
function byteLevel(extra = 0): { tok: Record<string, unknown>; config: Record<string, unknown>; model: Record<string, unknown> } {
  const chars = byteToChar();
  const vocab: Record<string, number> = {};
  chars.forEach((c, i) => (vocab[c] = i));
  const G = chars[32]!; // 'Ġ', the space byte
  const merges = [`${G} t`, 'h e', `${G}t he`, 'l l', 'll o', `${G} w`, 'o r', `${G}w or`, 'i n', `${G} a`];
  let n = 256;
  for (const m of merges) vocab[m.replace(' ', '')] = n++;
  for (let i = 0; i < extra; i++) vocab[`x${i}`] = n++;
  const specials = ['<|endoftext|>', '<|im_start|>', '<|im_end|>'];
  const bl = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true };
  return {
    tok: {
      version: '1.0',
      truncation: null,
      padding: null,
      added_tokens: specials.map((content, k) => ({ id: n + k, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true })),
      normalizer: { type: 'NFC' },
      pre_tokenizer: { type: 'Sequence', pretokenizers: [{ type: 'Split', pattern: { Regex: "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+" }, behavior: 'Isolated', invert: false }, { ...bl, use_regex: false }] },
      post_processor: { ...bl, trim_offsets: false },
      decoder: bl,
      model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: '', end_of_word_suffix: '', fuse_unk: false, byte_fallback: false, vocab, merges },
    },
    config: { bos_token: null, eos_token: '<|im_end|>', pad_token: '<|endoftext|>', chat_template: CHATML, model_max_length: 32768, tokenizer_class: 'Qwen2Tokenizer' },
    model: { model_type: 'qwen2', eos_token_id: n + 2, bos_token_id: n },
  };
}

/** A small Llama-shaped SentencePiece BPE with byte fallback. */
function sentencePiece(): { tok: Record<string, unknown>; config: Record<string, unknown>; model: Record<string, unknown> } {
  const SP = '\u2581';
  const vocab: Record<string, number> = { '<unk>': 0, '<s>': 1, '</s>': 2 };
  for (let b = 0; b < 256; b++) vocab[`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`] = 3 + b;
  for (const p of [SP, 'a', 'b', 'c', 'h', 'i', `${SP}h`, `${SP}hi`, 'ab', 'abc']) vocab[p] = Object.keys(vocab).length;
  return {
    tok: {
      version: '1.0',
      added_tokens: ['<unk>', '<s>', '</s>'].map((content, id) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true })),
      normalizer: { type: 'Sequence', normalizers: [{ type: 'Prepend', prepend: SP }, { type: 'Replace', pattern: { String: ' ' }, content: SP }] },
      pre_tokenizer: null,
      post_processor: {
        type: 'TemplateProcessing',
        single: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
        pair: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { Sequence: { id: 'B', type_id: 1 } }],
        special_tokens: { '<s>': { id: '<s>', ids: [1], tokens: ['<s>'] } },
      },
      decoder: { type: 'Sequence', decoders: [{ type: 'Replace', pattern: { String: SP }, content: ' ' }, { type: 'ByteFallback' }, { type: 'Fuse' }, { type: 'Strip', content: ' ', start: 1, stop: 0 }] },
      model: { type: 'BPE', dropout: null, unk_token: '<unk>', fuse_unk: true, byte_fallback: true, vocab, merges: [`${SP} h`, `${SP}h i`, 'a b', 'ab c'] },
    },
    config: { bos_token: '<s>', eos_token: { content: '</s>', lstrip: false }, chat_template: "{{ bos_token }}{% for m in messages %}{{ '[INST] ' + m['content'] + ' [/INST]' }}{% endfor %}" },
    model: { model_type: 'llama', bos_token_id: 1, eos_token_id: [2] },
  };
}

const TEXTS = ['hello world', 'the cat ate a hat', 'héllo 😀 \u0000 \n\n  x', '<|im_end|> <s> </s>', ''];

/** loadTokenizer under the rule, then use it; returns a failure or undefined. */
function check(dir: string): { failure?: string; loaded: boolean } {
  const t0 = performance.now();
  let failure: string | undefined;
  let loaded = false;
  try {
    const tok = loadTokenizer(dir);
    loaded = true;
    if (!Number.isInteger(tok.vocabSize) || tok.vocabSize <= 0) failure = `vocabSize is ${tok.vocabSize}`;
    for (const id of [tok.eosTokenId, tok.bosTokenId, tok.padTokenId])
      if (id !== undefined && !(Number.isInteger(id) && id >= 0)) failure ??= `a special token id is ${String(id)}`;
    for (const t of TEXTS) {
      const ids = tok.encode(t);
      if (!ids.every((i) => Number.isInteger(i) && i >= 0 && i < tok.vocabSize)) failure ??= `encode(${JSON.stringify(t)}) gave ids outside [0, vocabSize): ${ids.slice(0, 20).join(',')}`;
      tok.decode(ids);
    }
    if (tok.chatTemplate) tok.applyChatTemplate([{ role: 'user', content: 'hi' }]);
  } catch (e) {
    const why = checkTypedError(e, CODE, dir);
    if (why) failure = `${loaded ? 'after loading: ' : ''}${why}${why.includes('characters long') ? ': ' + (e as Error).message.slice(0, 300) : ''}`;
  }
  const ms = performance.now() - t0;
  if (ms > PER_CASE_MS) failure ??= `took ${ms.toFixed(0)} ms`;
  return { failure, loaded };
}

type Files = Record<string, unknown>;

function writeFolder(dir: string, files: Files): void {
  mkdirSync(dir, { recursive: true });
  for (const [name, v] of Object.entries(files)) if (v !== undefined) writeFileSync(join(dir, name), typeof v === 'string' ? v : JSON.stringify(v));
}

function mutateFolder(r: Rng, base: { tok: Files; config: Files; model: Files }): Files {
  const files: Files = { 'tokenizer.json': structuredClone(base.tok), 'tokenizer_config.json': structuredClone(base.config), 'config.json': structuredClone(base.model) };
  for (let k = 1 + below(r, 2); k > 0; k--) {
    const name = r() < 0.6 ? 'tokenizer.json' : pick(r, ['tokenizer_config.json', 'config.json']);
    const op = below(r, 10);
    if (op < 7) files[name] = mutateJson(files[name], r);
    else if (op < 9) files[name] = mutateText(typeof files[name] === 'string' ? (files[name] as string) : JSON.stringify(files[name]) ?? '', r);
    else files[name] = r() < 0.5 ? undefined : pick(r, ['', 'null', '[]', '"x"', '{}']);
  }
  return files;
}

describe('tokenizer loader under mutated files', () => {
  it('byte-level BPE (GPT-2 / Qwen2 shape) and SentencePiece BPE (Llama shape)', () => {
    const seed = baseSeed() ^ 0x70c;
    const r = rng(seed);
    const bases = [byteLevel(), sentencePiece()];
    const failures: string[] = [];
    const t0 = performance.now();
    let cases = 0;
    let loaded = 0;
    const keep = process.env.FUZZ_TS_KEEP === undefined ? -1 : Number(process.env.FUZZ_TS_KEEP);
    // the library reports some malformed parts on the console and goes on; keep CI logs readable
    const quiet = ['log', 'warn', 'error', 'info'].map((m) => vi.spyOn(console, m as 'log').mockImplementation(() => {}));
    while ((cases < 200 || performance.now() - t0 < budgetMs()) && failures.length < 5 && cases < 50_000) {
      const files = mutateFolder(r, bases[cases % 2]!);
      const dir = join(work, `t${cases}`);
      writeFolder(dir, files);
      if (keep === cases) {
        // FUZZ_TS_KEEP=<case>: copy that case's folder out for a closer look, without running it
        cpSync(dir, join(tmpdir(), `score-rl-tok-case-${cases}`), { recursive: true });
        process.stdout.write(`case ${cases} kept in ${join(tmpdir(), `score-rl-tok-case-${cases}`)}\n`);
        break;
      }
      const out = check(dir);
      if (out.loaded) loaded++;
      if (out.failure) {
        const shown = Object.entries(files)
          .map(([k, v]) => `${k}: ${(typeof v === 'string' ? v : JSON.stringify(v) ?? 'absent').slice(0, 400)}`)
          .join('\n      ');
        failures.push(`case ${cases} (seed ${seed}): ${out.failure}\n      ${shown}`);
      }
      rmSync(dir, { recursive: true, force: true });
      cases++;
    }
    quiet.forEach((q) => q.mockRestore());
    console.log(`tokenizer: ${cases} mutated folders, ${loaded} loaded, ${failures.length} failures, ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    expect(failures).toEqual([]);
    expect(loaded).toBeGreaterThan(0);
  });

  it('regressions the property found, each a one-line TokenizerError naming the file', () => {
    const cases: [string, (b: ReturnType<typeof byteLevel>) => void, RegExp][] = [
      // a vocab id of 2^31: the library sized a table by it and hung for minutes
      ['huge id', (b) => ((b.tok.model as { vocab: Record<string, number> }).vocab['\u012a'] = 2 ** 31), /tokenizer\.json: model\.vocab: token "Ī" has id 2147483648/],
      // an id that is not a number ended up in encode()'s output
      ['string id', (b) => ((b.tok.model as { vocab: Record<string, unknown> }).vocab['he'] = 'Isolated'), /model\.vocab: token "he" has id "Isolated"/],
      ['added token id true', (b) => ((b.tok.added_tokens as { id: unknown }[])[0]!.id = true), /added_tokens\[0\] must have an integer id/],
      // a pre-tokenizer whose behavior is not a string built, then threw TypeError on encode
      ['behavior 7', (b) => (((b.tok.pre_tokenizer as { pretokenizers: { behavior?: unknown }[] }).pretokenizers[0]!.behavior = 7)), /tokenizer\.json: encoding failed/],
      // a post-processor that is a number: TypeError ('in' operator) on encode
      ['post_processor 1e6', (b) => (b.tok.post_processor = 1e6), /tokenizer\.json: /],
      // a token text with a line break, and a 10,000-character one, in the message
      ['eos "\r\n"', (b) => (b.config.eos_token = '\r\n'), /tokenizer_config\.json: eos_token '\\u000d\\u000a' is not in the vocabulary/],
      ['eos 10k chars', (b) => (b.config.eos_token = 'a'.repeat(10_000)), /eos_token 'a{80}\.\.\.' is not in the vocabulary/],
      // a template that parses but fails to render (undefined variable in an operation)
      ['template', (b) => (b.config.chat_template = "{{ nothing + 'x' }}"), /tokenizer_config\.json: chat_template failed to render/],
    ];
    for (const [name, edit, want] of cases) {
      const b = byteLevel();
      edit(b);
      const dir = join(work, `regression-${name.replace(/\W+/g, '-')}`);
      writeFolder(dir, { 'tokenizer.json': b.tok, 'tokenizer_config.json': b.config });
      let err: unknown;
      const t0 = performance.now();
      try {
        const tok = loadTokenizer(dir);
        tok.applyChatTemplate([{ role: 'user', content: 'hi' }]);
      } catch (e) {
        err = e;
      }
      expect(performance.now() - t0, name).toBeLessThan(PER_CASE_MS);
      expect(checkTypedError(err, CODE, dir), name).toBeUndefined();
      expect((err as Error).message, name).toMatch(want);
    }
  });

  it('vocabularies of any size load, up to Qwen2 size (151,646 tokens) and beyond', () => {
    const r = rng(baseSeed() ^ 0x5123);
    const sizes = [0, 1000, 151_646 - 269, 100_000 + below(r, 150_000)];
    const failures: string[] = [];
    for (const extra of sizes) {
      const b = byteLevel(extra);
      const dir = join(work, `size-${extra}`);
      writeFolder(dir, { 'tokenizer.json': b.tok, 'tokenizer_config.json': b.config });
      const out = check(dir);
      if (out.failure || !out.loaded) failures.push(`${extra} extra tokens: ${out.failure ?? 'did not load'}`);
      else expect(loadTokenizer(dir).vocabSize).toBe(256 + 10 + extra + 3);
      rmSync(dir, { recursive: true, force: true });
    }
    expect(failures).toEqual([]);
  });
});
