// Hugging Face tokenizers (tokenizer.json + tokenizer_config.json) through
// @huggingface/tokenizers, a pure-JavaScript implementation of the same pipeline
// (normaliser, pre-tokeniser, model, post-processor, decoder). Supported models:
// BPE, which covers byte-level BPE (GPT-2, Qwen2, Llama 3) and SentencePiece-style
// BPE with byte fallback (Llama 1/2).
import { Tokenizer as HfTokenizer } from '@huggingface/tokenizers';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { ChatTemplate, pickTemplate, type ChatOptions } from './chat.js';
import { TokenizerError, type ChatMessage, type EncodeOptions, type Tokenizer } from './types.js';

const SUPPORTED = new Set(['BPE']);

function readJson(file: string, required: boolean): Record<string, unknown> | undefined {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    if (required) throw new TokenizerError(`${file}: no such file`);
    return undefined;
  }
  try {
    const v = JSON.parse(text) as unknown;
    if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new Error('expected a JSON object');
    return v as Record<string, unknown>;
  } catch (e) {
    throw new TokenizerError(`${file}: invalid JSON (${(e as Error).message.split('\n')[0]})`);
  }
}

/** A special-token entry of tokenizer_config.json: "<s>" or {"content": "<s>", ...}. */
function tokenText(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (v && typeof v === 'object' && typeof (v as { content?: unknown }).content === 'string') return (v as { content: string }).content;
  return undefined;
}

export class HfTokenizerFiles implements Tokenizer {
  readonly vocabSize: number;
  readonly eosTokenId: number | undefined;
  readonly bosTokenId: number | undefined;
  readonly padTokenId: number | undefined;
  readonly specialTokens: ReadonlyMap<string, number>;
  readonly chatTemplate: ChatTemplate | undefined;
  readonly modelType: string;
  private tok: HfTokenizer;

  constructor(json: Record<string, unknown>, config: Record<string, unknown>, file: string, configFile: string, modelConfig?: Record<string, unknown>) {
    const model = json.model as { type?: unknown; vocab?: unknown } | undefined;
    if (!model || typeof model !== 'object') throw new TokenizerError(`${file}: field 'model' is missing`);
    const type = typeof model.type === 'string' ? model.type : model.vocab && !Array.isArray(model.vocab) && 'merges' in model ? 'BPE' : String(model.type);
    if (!SUPPORTED.has(type)) throw new TokenizerError(`${file}: unsupported tokenizer model type '${type}' (supported: BPE, as in GPT-2, Llama and Qwen2)`);
    this.modelType = type;
    try {
      this.tok = new HfTokenizer(json, config);
    } catch (e) {
      throw new TokenizerError(`${file}: cannot build the tokenizer (${(e as Error).message.split('\n')[0]})`);
    }
    const vocab = this.tok.get_vocab(true);
    this.vocabSize = Math.max(...vocab.values()) + 1;
    const specials = new Map<string, number>();
    for (const [id, t] of this.tok.get_added_tokens_decoder()) if (t.special) specials.set(t.content, id);
    this.specialTokens = specials;
    const idOf = (key: string): number | undefined => {
      const text = tokenText(config[key]);
      if (text === undefined) return undefined;
      const id = this.tok.token_to_id(text);
      if (id === undefined) throw new TokenizerError(`${configFile}: ${key} '${text}' is not in the vocabulary of ${file}`);
      return id;
    };
    const fromModel = (key: string): number | undefined => {
      const v = modelConfig?.[key];
      return typeof v === 'number' ? v : Array.isArray(v) && typeof v[0] === 'number' ? v[0] : undefined;
    };
    this.eosTokenId = idOf('eos_token') ?? fromModel('eos_token_id');
    this.bosTokenId = idOf('bos_token') ?? fromModel('bos_token_id');
    this.padTokenId = idOf('pad_token') ?? fromModel('pad_token_id');
    const template = pickTemplate(config.chat_template, configFile);
    this.chatTemplate =
      template === undefined
        ? undefined
        : new ChatTemplate(template, { bos_token: tokenText(config.bos_token) ?? '', eos_token: tokenText(config.eos_token) ?? '' }, configFile);
  }

  encode(text: string, opts: EncodeOptions = {}): number[] {
    return this.tok.encode(text, { add_special_tokens: opts.addSpecialTokens ?? false }).ids;
  }

  decode(ids: ArrayLike<number>, opts: { skipSpecialTokens?: boolean } = {}): string {
    if (ids.length === 0) return ''; // (the library rejects an empty list: an attempt that is only EOS is empty text)
    return this.tok.decode(Array.from(ids), { skip_special_tokens: opts.skipSpecialTokens ?? false, clean_up_tokenization_spaces: false });
  }

  /** Render messages with the tokenizer's chat template. */
  applyChatTemplate(messages: ChatMessage[], opts: ChatOptions = {}): string {
    if (!this.chatTemplate) throw new TokenizerError('this tokenizer has no chat_template in tokenizer_config.json');
    return this.chatTemplate.render(messages, opts);
  }
}

/** Load a tokenizer from a checkpoint folder (tokenizer.json, tokenizer_config.json and
 * config.json where present) or from a tokenizer.json path. */
export function loadTokenizer(path: string): HfTokenizerFiles {
  let dir: string;
  let file: string;
  try {
    const st = statSync(path);
    dir = st.isDirectory() ? path : join(path, '..');
    file = st.isDirectory() ? join(path, 'tokenizer.json') : path;
  } catch {
    throw new TokenizerError(`${path}: no such file or folder`);
  }
  const json = readJson(file, true)!;
  const configFile = join(dir, 'tokenizer_config.json');
  const config = readJson(configFile, false) ?? {};
  const modelConfig = readJson(join(dir, 'config.json'), false);
  return new HfTokenizerFiles(json, config, file, configFile, modelConfig);
}
