// What the rest of score-rl needs from a tokenizer.

export interface ChatMessage {
  role: 'system' | 'user' | 'assistant' | (string & {});
  content: string;
}

export interface EncodeOptions {
  /** add the model's special tokens (BOS for Llama) around the text (default false) */
  addSpecialTokens?: boolean;
}

export interface Tokenizer {
  readonly vocabSize: number;
  readonly eosTokenId: number | undefined;
  readonly bosTokenId: number | undefined;
  readonly padTokenId: number | undefined;
  /** special token strings and their ids, from the files */
  readonly specialTokens: ReadonlyMap<string, number>;
  encode(text: string, opts?: EncodeOptions): number[];
  decode(ids: ArrayLike<number>, opts?: { skipSpecialTokens?: boolean }): string;
}

/** Bad tokenizer files; the message is one line naming the file. */
export class TokenizerError extends Error {
  readonly code = 'ERR_SCORE_TOKENIZER';
}
