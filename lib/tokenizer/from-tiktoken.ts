// Build a Hugging Face tokenizer.json from a tiktoken rank table (the ones js-tiktoken
// ships), so that a real byte-level BPE can be made without downloading anything: GPT-2's
// (`gpt2`: the ByteLevel pre-tokeniser with its built-in regex) or one split by its own
// regex first, the layout of Llama 3's and Qwen2's tokenizer.json (`cl100k_base`: a Split
// pre-tokeniser, then ByteLevel without regex). The merges are recovered by running
// byte-level BPE on each token with only the ranks below its own: what is left is the pair
// that formed it.

/** js-tiktoken's rank data: lines "! <first rank> <base64 token> <base64 token> ...". */
export interface TiktokenRanks {
  pat_str: string;
  special_tokens: Record<string, number>;
  bpe_ranks: string;
}

const GPT2_PATTERN = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

/** GPT-2's reversible map from bytes to printable characters (printable Latin-1 bytes
 * stand for themselves, the others are moved to U+0100 onwards in byte order). */
export function byteToChar(): string[] {
  const printable = (b: number) => (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
  const out: string[] = [];
  let shifted = 0;
  for (let b = 0; b < 256; b++) out.push(String.fromCodePoint(printable(b) ? b : 256 + shifted++));
  return out;
}

export function tiktokenToHuggingFace(ranks: TiktokenRanks): { tokenizer: Record<string, unknown>; config: Record<string, unknown> } {
  // tokens as latin1 strings: one character per byte
  const tokens: string[] = [];
  const rankOf = new Map<string, number>();
  for (const line of ranks.bpe_ranks.split('\n')) {
    if (line === '') continue;
    const parts = line.split(' ');
    let r = Number(parts[1]);
    for (const b64 of parts.slice(2)) {
      const tok = Buffer.from(b64, 'base64').toString('latin1');
      tokens[r] = tok;
      rankOf.set(tok, r);
      r++;
    }
  }
  const chars = byteToChar();
  const show = (tok: string) => Array.from(tok, (c) => chars[c.charCodeAt(0)]).join('');
  const vocab: Record<string, number> = {};
  const merges: string[] = [];
  for (let r = 0; r < tokens.length; r++) {
    const tok = tokens[r];
    if (tok === undefined) throw new Error(`rank table: rank ${r} is missing`);
    vocab[show(tok)] = r;
    if (tok.length < 2) continue;
    const parts = Array.from(tok);
    while (parts.length > 2) {
      let best = -1;
      let bestRank = Infinity;
      for (let i = 0; i + 1 < parts.length; i++) {
        const pr = rankOf.get(parts[i]! + parts[i + 1]!);
        if (pr !== undefined && pr < r && pr < bestRank) {
          bestRank = pr;
          best = i;
        }
      }
      if (best < 0) throw new Error(`rank table: token ${r} cannot be formed from lower ranks`);
      parts.splice(best, 2, parts[best]! + parts[best + 1]!);
    }
    merges.push(`${show(parts[0]!)} ${show(parts[1]!)}`);
  }
  const added = Object.entries(ranks.special_tokens).map(([content, id]) => {
    vocab[content] = id;
    return { id, content, single_word: false, lstrip: false, rstrip: false, normalized: true, special: true };
  });
  const gpt2 = ranks.pat_str === GPT2_PATTERN;
  const byteLevel = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: gpt2 };
  const tokenizer = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: added,
    normalizer: null,
    pre_tokenizer: gpt2
      ? byteLevel
      : { type: 'Sequence', pretokenizers: [{ type: 'Split', pattern: { Regex: ranks.pat_str }, behavior: 'Isolated', invert: false }, byteLevel] },
    post_processor: { ...byteLevel, trim_offsets: false },
    decoder: byteLevel,
    model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: '', end_of_word_suffix: '', fuse_unk: false, byte_fallback: false, vocab, merges },
  };
  const eos = Object.keys(ranks.special_tokens)[0] ?? null;
  const config = { bos_token: eos, eos_token: eos, unk_token: eos, model_max_length: gpt2 ? 1024 : 8192, tokenizer_class: gpt2 ? 'GPT2Tokenizer' : 'PreTrainedTokenizerFast', add_prefix_space: false };
  return { tokenizer, config };
}
