// The model presets of DESIGN.md: the same shapes in `init`, `bench` and every
// comparison with other systems. With --arch llama|qwen2 the same sizes use the
// Llama/Qwen2 layer: intermediate size 8/3 d rounded up to a multiple of 64,
// key/value heads = heads / 2.
import { ScoreError } from './errors.js';

export type Arch = 'gpt2' | 'llama' | 'qwen2';
export const ARCHS: readonly Arch[] = ['gpt2', 'llama', 'qwen2'];

export interface Preset {
  layers: number;
  dModel: number;
  heads: number;
  vocab: number;
  /** training / scoring sequence length of the benchmarks */
  seqT: number;
  /** training batch of the benchmarks */
  batchB: number;
  /** sampling benchmark: prompt tokens, new tokens, batch */
  sample: { prompt: number; newTokens: number; batch: number };
}

export const PRESETS: Record<string, Preset> = {
  tiny: { layers: 4, dModel: 256, heads: 4, vocab: 512, seqT: 128, batchB: 16, sample: { prompt: 32, newTokens: 96, batch: 16 } },
  small: { layers: 6, dModel: 384, heads: 6, vocab: 8192, seqT: 256, batchB: 8, sample: { prompt: 32, newTokens: 96, batch: 16 } },
  gpt2: { layers: 12, dModel: 768, heads: 12, vocab: 50257, seqT: 256, batchB: 4, sample: { prompt: 32, newTokens: 96, batch: 4 } },
};

export function getPreset(name: string): Preset {
  const p = PRESETS[name];
  if (!p) throw new ScoreError('ERR_SCORE_INVALID_ARGUMENT', `unknown preset '${name}' (expected ${Object.keys(PRESETS).join(', ')})`);
  return p;
}

/** A Hugging Face config.json object for `arch` at the sizes of `preset`. */
export function presetConfig(arch: Arch, presetName: string, maxPositions = 1024): Record<string, unknown> {
  const p = getPreset(presetName);
  const eos = p.vocab - 1;
  if (arch === 'gpt2') {
    return {
      architectures: ['GPT2LMHeadModel'],
      model_type: 'gpt2',
      vocab_size: p.vocab,
      n_positions: maxPositions,
      n_embd: p.dModel,
      n_layer: p.layers,
      n_head: p.heads,
      n_inner: null,
      layer_norm_epsilon: 1e-5,
      activation_function: 'gelu_new',
      tie_word_embeddings: true,
      bos_token_id: eos,
      eos_token_id: eos,
    };
  }
  if (!ARCHS.includes(arch)) throw new ScoreError('ERR_SCORE_INVALID_ARGUMENT', `unknown arch '${arch}' (expected ${ARCHS.join(', ')})`);
  return {
    architectures: [arch === 'llama' ? 'LlamaForCausalLM' : 'Qwen2ForCausalLM'],
    model_type: arch,
    vocab_size: p.vocab,
    hidden_size: p.dModel,
    intermediate_size: Math.ceil((8 * p.dModel) / 3 / 64) * 64,
    num_hidden_layers: p.layers,
    num_attention_heads: p.heads,
    num_key_value_heads: p.heads / 2,
    max_position_embeddings: maxPositions,
    rms_norm_eps: 1e-6,
    rope_theta: arch === 'llama' ? 10000 : 1000000,
    hidden_act: 'silu',
    attention_bias: false,
    tie_word_embeddings: arch === 'qwen2',
    bos_token_id: eos,
    eos_token_id: eos,
  };
}
