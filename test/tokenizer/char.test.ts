// The built-in character-level tokenizer, and its tokenizer.json export read back
// through the Hugging Face loader.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CharTokenizer, loadTokenizer } from '../../lib/tokenizer/index.js';

describe('CharTokenizer', () => {
  const tok = new CharTokenizer('0123456789+-=? abc');

  it('numbers specials first, then the alphabet, and round-trips', () => {
    expect(tok.vocabSize).toBe(4 + 18);
    expect([tok.padTokenId, tok.bosTokenId, tok.eosTokenId, tok.unkTokenId]).toEqual([0, 1, 2, 3]);
    expect(tok.encode('10+2')).toEqual([5, 4, 14, 6]);
    expect(tok.encode('1', { addSpecialTokens: true })).toEqual([1, 5]);
    const s = '12+34=? abc';
    expect(tok.decode(tok.encode(s))).toBe(s);
  });

  it('maps unknown characters to <unk> and decodes specials unless skipped', () => {
    expect(tok.encode('1x')).toEqual([5, 3]);
    expect(tok.decode([1, 5, 2])).toBe('<bos>1<eos>');
    expect(tok.decode([1, 5, 2], { skipSpecialTokens: true })).toBe('1');
    expect(() => tok.decode([99])).toThrow(/token id 99 is out of range 0..21/);
  });

  it('exports a tokenizer.json that the Hugging Face loader reads to the same ids', () => {
    const dir = mkdtempSync(join(tmpdir(), 'score-rl-char-'));
    try {
      const { tokenizer, config } = tok.toHuggingFace();
      writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(tokenizer));
      writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify(config));
      const hf = loadTokenizer(dir);
      for (const s of ['12+34=?', 'abc 9', '1x2']) expect(hf.encode(s)).toEqual(tok.encode(s));
      expect(hf.decode(tok.encode('12 + 3'))).toBe('12 + 3');
      expect([hf.eosTokenId, hf.bosTokenId, hf.padTokenId, hf.vocabSize]).toEqual([2, 1, 0, 22]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses an empty alphabet', () => {
    expect(() => new CharTokenizer('')).toThrow(/alphabet is empty/);
  });
});
