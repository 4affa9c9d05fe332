export { loadTokenizer, HfTokenizerFiles } from './hf.js';
export { CharTokenizer, CHAR_SPECIALS } from './char.js';
export { ChatTemplate, pickTemplate, type ChatOptions } from './chat.js';
export { tiktokenToHuggingFace, byteToChar, type TiktokenRanks } from './from-tiktoken.js';
export { TokenizerError, type Tokenizer, type ChatMessage, type EncodeOptions } from './types.js';
