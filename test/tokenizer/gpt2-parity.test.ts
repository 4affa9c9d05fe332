// The GPT-2 byte-level BPE, loaded from a tokenizer.json through our loader, must
// give exactly the ids of js-tiktoken's `gpt2` encoding on real text: all MATH-500
// problems and all HumanEval prompts. The tokenizer.json is built from js-tiktoken's
// rank table (no download). The same for `cl100k_base`, whose tokenizer.json has the
// layout of Llama 3's and Qwen2's (a Split regex pre-tokeniser, then ByteLevel).
import { getEncoding } from 'js-tiktoken';
import cl100kRanks from 'js-tiktoken/ranks/cl100k_base';
import gpt2Ranks from 'js-tiktoken/ranks/gpt2';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadTokenizer, tiktokenToHuggingFace, type HfTokenizerFiles } from '../../lib/tokenizer/index.js';

const DATA = join(import.meta.dirname, '../fixtures/data');
const jsonl = (f: string) =>
  readFileSync(join(DATA, f), 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as Record<string, string>);

describe('GPT-2 tokenizer.json vs js-tiktoken gpt2', () => {
  let dir: string;
  let tok: HfTokenizerFiles;
  const ref = getEncoding('gpt2');
  const texts = [...jsonl('math500/test.jsonl').map((r) => r.problem!), ...jsonl('humaneval/HumanEval.jsonl').map((r) => r.prompt!)];

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'score-rl-gpt2-'));
    const { tokenizer, config } = tiktokenToHuggingFace(gpt2Ranks);
    writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(tokenizer));
    writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify(config));
    const t0 = performance.now();
    tok = loadTokenizer(dir);
    console.log(`gpt2 tokenizer.json: ${(tokenizer.model as { merges: string[] }).merges.length} merges, loaded in ${(performance.now() - t0).toFixed(0)} ms`);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('has GPT-2 shape and specials from the files', () => {
    expect(texts.length).toBe(664);
    expect(tok.vocabSize).toBe(50257);
    expect(tok.eosTokenId).toBe(50256);
    expect(tok.specialTokens.get('<|endoftext|>')).toBe(50256);
  });

  it('gives the same ids on all 500 MATH-500 problems and 164 HumanEval prompts, and round-trips', () => {
    let tokens = 0;
    const mismatches: number[] = [];
    const t0 = performance.now();
    for (let i = 0; i < texts.length; i++) {
      const ids = tok.encode(texts[i]!);
      tokens += ids.length;
      if (JSON.stringify(ids) !== JSON.stringify(ref.encode(texts[i]!))) mismatches.push(i);
      else if (tok.decode(ids) !== texts[i]) mismatches.push(-i - 1);
    }
    const ms = performance.now() - t0;
    console.log(`encoded ${texts.length} texts, ${tokens} tokens (with the reference and decode) in ${ms.toFixed(0)} ms`);
    expect(mismatches).toEqual([]);
    expect(tokens).toBeGreaterThan(50_000);
  });

  it('agrees on awkward text: contractions, whitespace runs, unicode, and the EOS marker', () => {
    const samples = ["I'll say it's   fine\n\n\t x", 'naïve café — 数学 🙂', '  leading and trailing  ', "''''s 's"];
    for (const s of samples) expect(tok.encode(s)).toEqual(ref.encode(s));
    expect(tok.encode('a<|endoftext|>b')).toEqual(ref.encode('a<|endoftext|>b', 'all'));
    expect(tok.decode(tok.encode('x<|endoftext|>'), { skipSpecialTokens: true })).toBe('x');
  });
});

describe('cl100k_base tokenizer.json (the Llama 3 / Qwen2 layout: Split regex, then ByteLevel) vs js-tiktoken', () => {
  let dir: string;
  let tok: HfTokenizerFiles;
  const ref = getEncoding('cl100k_base');
  const texts = [...jsonl('math500/test.jsonl').map((r) => r.problem!), ...jsonl('humaneval/HumanEval.jsonl').map((r) => r.prompt!)];

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'score-rl-cl100k-'));
    const t0 = performance.now();
    const { tokenizer, config } = tiktokenToHuggingFace(cl100kRanks);
    const built = performance.now() - t0;
    expect((tokenizer.pre_tokenizer as { type: string }).type).toBe('Sequence');
    writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(tokenizer));
    writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify(config));
    const t1 = performance.now();
    tok = loadTokenizer(dir);
    console.log(`cl100k tokenizer.json: ${(tokenizer.model as { merges: string[] }).merges.length} merges, built in ${built.toFixed(0)} ms, loaded in ${(performance.now() - t1).toFixed(0)} ms`);
  }, 60_000);
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('gives the same ids on all 500 MATH-500 problems and 164 HumanEval prompts, and round-trips', () => {
    let tokens = 0;
    const mismatches: number[] = [];
    for (let i = 0; i < texts.length; i++) {
      const ids = tok.encode(texts[i]!);
      tokens += ids.length;
      if (JSON.stringify(ids) !== JSON.stringify(ref.encode(texts[i]!))) mismatches.push(i);
      else if (tok.decode(ids) !== texts[i]) mismatches.push(-i - 1);
    }
    console.log(`cl100k: ${texts.length - mismatches.length}/${texts.length} texts identical, ${tokens} tokens`);
    expect(mismatches).toEqual([]);
    expect(tok.eosTokenId).toBe(100257);
  });

  it('agrees on awkward text: contractions in any case, digit runs, newlines, unicode', () => {
    const samples = ["I'LL say it's   fine\n\n\t x", "WE'RE 1234567 and 12", 'naïve café — 数学 🙂\r\n\r\n  x', '  leading and trailing  \n'];
    for (const s of samples) expect(tok.encode(s), s).toEqual(ref.encode(s));
  });
});
