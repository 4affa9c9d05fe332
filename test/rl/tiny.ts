// A tiny built-in task for the trainer's tests: "a+b=" with single digits, answered by
// the last digit of the sum; a character tokenizer; a 2-layer GPT small enough to
// train in seconds.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { initModel, type Model } from '../../lib/model/model.js';
import { CharTokenizer } from '../../lib/tokenizer/char.js';
import type { Task, TaskRecord } from '../../lib/tasks/task.js';
import { plainFormat } from '../../lib/rl/format.js';

export const tokenizer = new CharTokenizer('0123456789+=?');
export const format = plainFormat(tokenizer, { instruction: '?', separator: '' });

export const tinyTask: Task = {
  name: 'last-digit-sum',
  async load() {
    return records();
  },
  async reward(completion: string, record: TaskRecord) {
    const ok = completion.trim() === record.answer;
    return { correct: ok, reason: ok ? 'equal' : `'${completion}' != '${record.answer}'` };
  },
};

export function records(): TaskRecord[] {
  const out: TaskRecord[] = [];
  for (let a = 0; a < 10; a++) for (let b = 0; b < 10; b++) out.push({ id: `${a}+${b}`, prompt: `${a}+${b}=`, answer: String((a + b) % 10), meta: {} });
  return out;
}

export function tinyModel(seed = 1): Promise<Model> {
  return initModel(
    {
      architectures: ['GPT2LMHeadModel'], model_type: 'gpt2', vocab_size: tokenizer.vocabSize, n_positions: 32, n_embd: 32, n_layer: 2, n_head: 2,
      n_inner: null, layer_norm_epsilon: 1e-5, activation_function: 'gelu_new', tie_word_embeddings: true, bos_token_id: tokenizer.bosTokenId, eos_token_id: tokenizer.eosTokenId,
    },
    { seed },
  );
}

/** Printable ASCII and newline: every GSM8K question and the paper's prompts encode without <unk>. */
export const asciiTokenizer = () => new CharTokenizer(Array.from({ length: 95 }, (_, i) => String.fromCharCode(32 + i)).join('') + '\n');

/** A checkpoint folder (config, weights, tokenizer.json) of a small random GPT over the ASCII tokenizer, for CLI tests. */
export async function writeAsciiModel(dir: string, o: { positions: number; embd: number; layers: number; seed: number }): Promise<void> {
  const tok = asciiTokenizer();
  const m = await initModel(
    {
      architectures: ['GPT2LMHeadModel'], model_type: 'gpt2', vocab_size: tok.vocabSize, n_positions: o.positions, n_embd: o.embd, n_layer: o.layers, n_head: 2,
      n_inner: null, layer_norm_epsilon: 1e-5, activation_function: 'gelu_new', tie_word_embeddings: true, bos_token_id: tok.bosTokenId, eos_token_id: tok.eosTokenId,
    },
    { seed: o.seed },
  );
  await m.save(dir);
  m.dispose();
  const hf = tok.toHuggingFace();
  writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(hf.tokenizer));
  writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify(hf.config));
}
