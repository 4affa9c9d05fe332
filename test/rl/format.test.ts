// Episode formats: the second turn is the first turn's tokens plus the sampled attempt plus
// the instruction turn, and (with a chat template) decodes to exactly the conversation the
// template renders.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CharTokenizer } from '../../lib/tokenizer/char.js';
import { loadTokenizer } from '../../lib/tokenizer/hf.js';
import { chatFormat, MATH_SELF_CORRECTION, plainFormat } from '../../lib/rl/format.js';
import { asciiTokenizer } from './tiny.js';

const dir = mkdtempSync(join(tmpdir(), 'score-rl-format-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('plain format', () => {
  const tok = new CharTokenizer('abc123+=?\n');
  const f = plainFormat(tok, { instruction: '?', separator: '\n' });
  it('x1 = BOS + prompt; x2 = x1 + y1 + separator + instruction + separator', () => {
    const x1 = f.first('1+2=');
    expect(x1).toEqual([tok.bosTokenId, ...tok.encode('1+2=')]);
    const y1 = [...tok.encode('3'), tok.eosTokenId];
    expect(f.second(x1, y1)).toEqual([...x1, ...y1, ...tok.encode('\n?\n')]);
    expect(f.text(y1)).toBe('3');
  });
  it('an attempt cut at the length limit is closed with EOS before the instruction', () => {
    const x1 = f.first('1+2=');
    expect(f.second(x1, tok.encode('33'))).toEqual([...x1, ...tok.encode('33'), tok.eosTokenId, ...tok.encode('\n?\n')]);
  });
});

describe('chat format (ChatML-style template)', () => {
  const chars = asciiTokenizer();
  const hf = chars.toHuggingFace();
  const added = hf.tokenizer.added_tokens as object[];
  const vocab = (hf.tokenizer.model as { vocab: Record<string, number> }).vocab;
  const start = chars.vocabSize, end = chars.vocabSize + 1;
  added.push({ id: start, content: '<|im_start|>', single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
  added.push({ id: end, content: '<|im_end|>', single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
  vocab['<|im_start|>'] = start;
  vocab['<|im_end|>'] = end;
  const template =
    "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}{% endfor %}" +
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";
  writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(hf.tokenizer));
  writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify({ ...hf.config, eos_token: '<|im_end|>', chat_template: template }));
  const tok = loadTokenizer(dir);
  const render = (m: { role: string; content: string }[], gen: boolean) => tok.applyChatTemplate(m, { addGenerationPrompt: gen });
  const f = chatFormat(tok, render, MATH_SELF_CORRECTION);

  it('the joined tokens decode to the conversation the template renders', () => {
    expect(tok.eosTokenId).toBe(end);
    const x1 = f.first('What is 2+2?');
    expect(tok.decode(x1)).toBe('<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n');
    const y1 = [...tok.encode('It is 5.'), end]; // the model ends its turn with <|im_end|>
    const x2 = f.second(x1, y1);
    expect(x2.slice(0, x1.length + y1.length)).toEqual([...x1, ...y1]);
    const conversation = [{ role: 'user', content: 'What is 2+2?' }, { role: 'assistant', content: 'It is 5.' }, { role: 'user', content: MATH_SELF_CORRECTION }];
    expect(tok.decode(x2)).toBe(render(conversation, true));
    expect(f.text(y1)).toBe('It is 5.');
  });
  it('an attempt cut by the length limit gets the end-of-turn token from the template', () => {
    const x1 = f.first('Q');
    const y1 = tok.encode('unfinished');
    const x2 = f.second(x1, y1);
    const conversation = [{ role: 'user', content: 'Q' }, { role: 'assistant', content: 'unfinished' }, { role: 'user', content: MATH_SELF_CORRECTION }];
    expect(tok.decode(x2)).toBe(render(conversation, true));
  });
});
