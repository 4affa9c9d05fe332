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

/** An error message from a library on one line: line breaks and control characters escaped. */
function oneLine(msg: string): string {
  return msg.replace(/[\u0000-\u001f\u007f\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`).slice(0, 500);
}

const errorText = (e: unknown): string => oneLine(e instanceof Error ? e.message : String(e));

/** Ids above this are not a real vocabulary (the largest are ~10^6) but a broken file: the
 * library sizes tables by the largest id, and 2^31 hangs it. */
const MAX_ID = 2 ** 24 - 1;

/** The library builds some parts of the pipeline lazily and trusts the file's types, so a
 * malformed tokenizer.json can construct and then fail, hang or return garbage ids on first
 * use. Check what the rest of the pipeline relies on up front: every id an integer in
 * [0, MAX_ID]. */
function checkIds(json: Record<string, unknown>, file: string): void {
  const isId = (id: unknown) => Number.isInteger(id) && (id as number) >= 0 && (id as number) <= MAX_ID;
  const vocab = (json.model as { vocab?: unknown }).vocab;
  if (!vocab || typeof vocab !== 'object' || Array.isArray(vocab)) throw new TokenizerError(`${file}: field 'model.vocab' must be an object of token -> id`);
  for (const [token, id] of Object.entries(vocab)) {
    if (!isId(id))
      throw new TokenizerError(`${file}: model.vocab: token ${oneLine(JSON.stringify(token).slice(0, 80))} has id ${oneLine(String(JSON.stringify(id)).slice(0, 40))}, not an integer in [0, ${MAX_ID}]`);
  }
  const added = json.added_tokens ?? [];
  if (!Array.isArray(added)) throw new TokenizerError(`${file}: field 'added_tokens' must be a list`);
  for (const [i, t] of added.entries()) {
    const ok = t && typeof t === 'object' && isId((t as { id?: unknown }).id) && typeof (t as { content?: unknown }).content === 'string';
    if (!ok) throw new TokenizerError(`${file}: added_tokens[${i}] must have an integer id in [0, ${MAX_ID}] and a string content`);
  }
}

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
    throw new TokenizerError(`${file}: invalid JSON (${errorText(e)})`);
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
    if (!SUPPORTED.has(type)) throw new TokenizerError(`${file}: unsupported tokenizer model type '${oneLine(type.slice(0, 80))}' (supported: BPE, as in GPT-2, Llama and Qwen2)`);
    this.modelType = type;
    this.file = file;
    checkIds(json, file);
    try {
      this.tok = new HfTokenizer(json, config);
    } catch (e) {
      throw new TokenizerError(`${file}: cannot build the tokenizer (${errorText(e)})`);
    }
    // (a loop, not Math.max(...values): spreading 150k ids overflows the stack)
    let maxId = -1;
    for (const id of this.tok.get_vocab(true).values()) if (id > maxId) maxId = id;
    if (maxId < 0) throw new TokenizerError(`${file}: the vocabulary is empty`);
    this.vocabSize = maxId + 1;
    const specials = new Map<string, number>();
    for (const [id, t] of this.tok.get_added_tokens_decoder()) if (t.special) specials.set(t.content, id);
    this.specialTokens = specials;
    const idOf = (key: string): number | undefined => {
      const text = tokenText(config[key]);
      if (text === undefined) return undefined;
      const id = this.tok.token_to_id(text);
      if (id === undefined) throw new TokenizerError(`${configFile}: ${key} '${oneLine(text.length > 80 ? text.slice(0, 80) + '...' : text)}' is not in the vocabulary of ${file}`);
      return id;
    };
    const fromModel = (key: string): number | undefined => {
      const v = modelConfig?.[key];
      const id = typeof v === 'number' ? v : Array.isArray(v) && typeof v[0] === 'number' ? v[0] : undefined;
      if (id === undefined || id < 0) return undefined; // (-1: none, as some configs write it)
      if (!Number.isInteger(id) || id >= this.vocabSize) throw new TokenizerError(`${join(configFile, '..', 'config.json')}: ${key} ${id} is not a token id of ${file} (${this.vocabSize} tokens)`);
      return id;
    };
    this.eosTokenId = idOf('eos_token') ?? fromModel('eos_token_id');
    this.bosTokenId = idOf('bos_token') ?? fromModel('bos_token_id');
    // (a pad id outside the tokenizer's vocabulary is not worth refusing the files for: some
    // configs give the model's padded vocabulary size; it is then treated as absent)
    let pad: number | undefined;
    try {
      pad = fromModel('pad_token_id');
    } catch {
      pad = undefined;
    }
    this.padTokenId = idOf('pad_token') ?? pad;
    const template = pickTemplate(config.chat_template, configFile);
    this.chatTemplate =
      template === undefined
        ? undefined
        : new ChatTemplate(template, { bos_token: tokenText(config.bos_token) ?? '', eos_token: tokenText(config.eos_token) ?? '' }, configFile);
    // Parts the library builds on first use fail here, at load time, naming the file.
    this.decode(this.encode('Hello world, 1+1=2. \u00e9\u4e2d\u{1F600}\n', { addSpecialTokens: true }));
  }

  private readonly file: string;

  encode(text: string, opts: EncodeOptions = {}): number[] {
    try {
      return this.tok.encode(text, { add_special_tokens: opts.addSpecialTokens ?? false }).ids;
    } catch (e) {
      throw new TokenizerError(`${this.file}: encoding failed (${errorText(e)})`);
    }
  }

  decode(ids: ArrayLike<number>, opts: { skipSpecialTokens?: boolean } = {}): string {
    if (ids.length === 0) return ''; // (the library rejects an empty list: an attempt that is only EOS is empty text)
    try {
      return this.tok.decode(Array.from(ids), { skip_special_tokens: opts.skipSpecialTokens ?? false, clean_up_tokenization_spaces: false });
    } catch (e) {
      throw new TokenizerError(`${this.file}: decoding failed (${errorText(e)})`);
    }
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
