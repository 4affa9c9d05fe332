// Loading tokenizer.json / tokenizer_config.json: a Llama-family (SentencePiece BPE
// with byte fallback) tokenizer written here by hand, special tokens and EOS from the
// files, chat templates through @huggingface/jinja, and clear errors on bad files.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ChatTemplate, loadTokenizer } from '../../lib/tokenizer/index.js';

const dirs: string[] = [];
function folder(files: Record<string, unknown>): string {
  const dir = mkdtempSync(join(tmpdir(), 'score-rl-tok-'));
  dirs.push(dir);
  for (const [name, v] of Object.entries(files)) writeFileSync(join(dir, name), typeof v === 'string' ? v : JSON.stringify(v));
  return dir;
}
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

const SP = '\u2581'; // the SentencePiece word marker
function llamaStyle(): Record<string, unknown> {
  const vocab: Record<string, number> = { '<unk>': 0, '<s>': 1, '</s>': 2 };
  for (let b = 0; b < 256; b++) vocab[`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`] = 3 + b;
  const pieces = [SP, 'h', 'e', 'l', 'o', `${SP}h`, 'll', `${SP}he`, 'llo', `${SP}hello`, 'w', 'r', 'd'];
  pieces.forEach((p, i) => (vocab[p] = 259 + i));
  return {
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
    decoder: {
      type: 'Sequence',
      decoders: [{ type: 'Replace', pattern: { String: SP }, content: ' ' }, { type: 'ByteFallback' }, { type: 'Fuse' }, { type: 'Strip', content: ' ', start: 1, stop: 0 }],
    },
    model: { type: 'BPE', dropout: null, unk_token: '<unk>', fuse_unk: true, byte_fallback: true, vocab, merges: [`${SP} h`, 'l l', `${SP}h e`, 'll o', `${SP}he llo`] },
  };
}

// a template in the ChatML style, written for this test
const CHATML =
  "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}{% endfor %}" +
  "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";
// a template in the Llama-2 style, written for this test
const INST =
  "{{ bos_token }}{% for m in messages %}{% if m['role'] == 'user' %}{{ '[INST] ' + m['content'] + ' [/INST]' }}" +
  "{% elif m['role'] == 'assistant' %}{{ ' ' + m['content'] + ' ' + eos_token }}{% endif %}{% endfor %}";

describe('Llama-family tokenizer.json (SentencePiece BPE, byte fallback)', () => {
  const dir = folder({ 'tokenizer.json': llamaStyle(), 'tokenizer_config.json': { bos_token: '<s>', eos_token: { content: '</s>' }, chat_template: INST } });
  const tok = loadTokenizer(dir);

  it('encodes with merges, BOS from the post-processor, and byte fallback', () => {
    expect(tok.encode('hello world')).toEqual([268, 259, 269, 263, 270, 262, 271]);
    expect(tok.encode('hello', { addSpecialTokens: true })).toEqual([1, 268]);
    // é is not in the vocabulary: its UTF-8 bytes C3 A9 become <0xC3> <0xA9>
    expect(tok.encode('hé')).toEqual([264, 3 + 0xc3, 3 + 0xa9]);
  });

  it('decodes back to the text, specials kept or skipped', () => {
    for (const s of ['hello world', 'hé', 'hello  hello']) expect(tok.decode(tok.encode(s))).toBe(s);
    expect(tok.decode([1, 268, 2], { skipSpecialTokens: true })).toBe('hello');
    expect(tok.decode([1, 268, 2])).toContain('</s>');
    expect(tok.decode([])).toBe(''); // an attempt that is only EOS
  });

  it('takes BOS/EOS from tokenizer_config.json and renders its chat template', () => {
    expect(tok.bosTokenId).toBe(1);
    expect(tok.eosTokenId).toBe(2);
    expect(tok.vocabSize).toBe(272);
    const text = tok.applyChatTemplate([
      { role: 'user', content: 'What is 2+2?' },
      { role: 'assistant', content: '4' },
      { role: 'user', content: 'Check it.' },
    ]);
    expect(text).toBe('<s>[INST] What is 2+2? [/INST] 4 </s>[INST] Check it. [/INST]');
  });
});

describe('chat templates', () => {
  it('renders a ChatML-style template with and without the generation prompt', () => {
    const t = new ChatTemplate(CHATML);
    const msgs = [
      { role: 'system', content: 'You are a math expert.' },
      { role: 'user', content: '1+1?' },
    ];
    expect(t.render(msgs)).toBe('<|im_start|>system\nYou are a math expert.<|im_end|>\n<|im_start|>user\n1+1?<|im_end|>\n<|im_start|>assistant\n');
    expect(t.render(msgs, { addGenerationPrompt: false })).not.toContain('assistant');
  });

  it('picks the default of a list of named templates and passes extra variables', () => {
    const dir = folder({
      'tokenizer.json': llamaStyle(),
      'tokenizer_config.json': { eos_token: '</s>', chat_template: [{ name: 'tool_use', template: 'x' }, { name: 'default', template: '{{ greeting }} {{ messages[0].content }}' }] },
    });
    expect(loadTokenizer(dir).applyChatTemplate([{ role: 'user', content: 'hi' }], { vars: { greeting: 'hello' } })).toBe('hello hi');
  });

  it('reads the EOS id from config.json when tokenizer_config.json has none', () => {
    const dir = folder({ 'tokenizer.json': llamaStyle(), 'config.json': { eos_token_id: 2, bos_token_id: 1 } });
    const tok = loadTokenizer(dir);
    expect([tok.bosTokenId, tok.eosTokenId]).toEqual([1, 2]);
    expect(() => tok.applyChatTemplate([])).toThrow(/no chat_template/);
  });
});

describe('bad tokenizer files: one-line errors naming the file', () => {
  it('a missing folder or file', () => {
    expect(() => loadTokenizer('/nonexistent/model')).toThrow(/^\/nonexistent\/model: no such file or folder$/);
    const dir = folder({ 'config.json': {} });
    expect(() => loadTokenizer(dir)).toThrow(`${join(dir, 'tokenizer.json')}: no such file`);
  });

  it('invalid JSON', () => {
    const dir = folder({ 'tokenizer.json': '{"model": ' });
    expect(() => loadTokenizer(dir)).toThrow(new RegExp(`^${join(dir, 'tokenizer.json')}: invalid JSON`));
  });

  it('an unsupported model type (WordPiece, Unigram)', () => {
    for (const type of ['WordPiece', 'Unigram']) {
      const dir = folder({ 'tokenizer.json': { model: { type, vocab: { a: 0 } } } });
      let msg = '';
      try {
        loadTokenizer(dir);
      } catch (e) {
        msg = (e as Error).message;
      }
      expect(msg).toBe(`${join(dir, 'tokenizer.json')}: unsupported tokenizer model type '${type}' (supported: BPE, as in GPT-2, Llama and Qwen2)`);
    }
  });

  it('an EOS token that is not in the vocabulary, and a chat template that does not parse', () => {
    const dir = folder({ 'tokenizer.json': llamaStyle(), 'tokenizer_config.json': { eos_token: '<|eot|>' } });
    expect(() => loadTokenizer(dir)).toThrow(/tokenizer_config.json: eos_token '<\|eot\|>' is not in the vocabulary/);
    const bad = folder({ 'tokenizer.json': llamaStyle(), 'tokenizer_config.json': { chat_template: '{% for m in messages %}' } });
    expect(() => loadTokenizer(bad)).toThrow(/tokenizer_config.json: chat_template does not parse/);
  });
});
