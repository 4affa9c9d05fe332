// A character-level tokenizer for the built-in synthetic tasks: one id per
// character of a fixed alphabet, after four special tokens. It can write itself as
// a Hugging Face tokenizer.json (a BPE model without merges), so that a checkpoint
// trained with it opens in other tools, and loadTokenizer() reads it back.
import { TokenizerError, type EncodeOptions, type Tokenizer } from './types.js';

export const CHAR_SPECIALS = ['<pad>', '<bos>', '<eos>', '<unk>'] as const;

export class CharTokenizer implements Tokenizer {
  readonly vocabSize: number;
  readonly padTokenId = 0;
  readonly bosTokenId = 1;
  readonly eosTokenId = 2;
  readonly unkTokenId = 3;
  readonly specialTokens: ReadonlyMap<string, number>;
  readonly alphabet: readonly string[];
  private ids = new Map<string, number>();

  constructor(alphabet: string) {
    const chars = [...new Set(Array.from(alphabet))];
    if (chars.length === 0) throw new TokenizerError('character tokenizer: the alphabet is empty');
    this.alphabet = chars;
    chars.forEach((c, i) => this.ids.set(c, CHAR_SPECIALS.length + i));
    this.specialTokens = new Map(CHAR_SPECIALS.map((s, i) => [s, i]));
    this.vocabSize = CHAR_SPECIALS.length + chars.length;
  }

  encode(text: string, opts: EncodeOptions = {}): number[] {
    const out = Array.from(text, (c) => this.ids.get(c) ?? this.unkTokenId);
    return opts.addSpecialTokens ? [this.bosTokenId, ...out] : out;
  }

  decode(ids: ArrayLike<number>, opts: { skipSpecialTokens?: boolean } = {}): string {
    let s = '';
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i]!;
      if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) throw new TokenizerError(`character tokenizer: token id ${id} is out of range 0..${this.vocabSize - 1}`);
      if (id < CHAR_SPECIALS.length) {
        if (!opts.skipSpecialTokens) s += CHAR_SPECIALS[id];
      } else s += this.alphabet[id - CHAR_SPECIALS.length];
    }
    return s;
  }

  /** tokenizer.json and tokenizer_config.json contents for this vocabulary. */
  toHuggingFace(): { tokenizer: Record<string, unknown>; config: Record<string, unknown> } {
    const vocab: Record<string, number> = {};
    CHAR_SPECIALS.forEach((s, i) => (vocab[s] = i));
    this.alphabet.forEach((c, i) => (vocab[c] = CHAR_SPECIALS.length + i));
    const tokenizer = {
      version: '1.0',
      truncation: null,
      padding: null,
      added_tokens: CHAR_SPECIALS.map((content, id) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true })),
      normalizer: null,
      pre_tokenizer: null,
      post_processor: null,
      decoder: { type: 'Fuse' },
      model: { type: 'BPE', dropout: null, unk_token: '<unk>', continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: false, byte_fallback: false, vocab, merges: [] },
    };
    const config = { bos_token: '<bos>', eos_token: '<eos>', pad_token: '<pad>', unk_token: '<unk>', tokenizer_class: 'PreTrainedTokenizerFast', model_max_length: 1 << 20 };
    return { tokenizer, config };
  }
}
