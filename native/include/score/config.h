// The model configuration: one decoder-only transformer with the knobs of
// GPT-2 (LayerNorm with bias, GELU-tanh MLP, learned positions) and
// Llama/Qwen2 (RMSNorm, SwiGLU MLP, rotary positions, grouped-query attention).
// Field meanings follow the Hugging Face config.json of each family.
#pragma once
#include <cstdint>
#include <string>

namespace score {

enum class Arch { GPT2, Llama, Qwen2 };

const char* arch_name(Arch arch);  // "gpt2", "llama", "qwen2" (the config.json model_type)

struct ModelConfig {
  Arch arch = Arch::GPT2;
  int vocab_size = 0;
  int n_layer = 0;
  int d_model = 0;      // hidden size C
  int n_head = 0;       // query heads H
  int n_kv_head = 0;    // key/value heads KVH (== H for GPT-2); H % KVH == 0
  int head_dim = 0;     // hd; C / H unless the config says otherwise
  int d_ff = 0;         // MLP inner size F (GPT-2: n_inner or 4C)
  int max_pos = 0;      // longest sequence (n_positions / max_position_embeddings)
  double norm_eps = 1e-5;
  double rope_theta = 10000.0;  // Llama/Qwen2 only
  bool qkv_bias = false;        // GPT-2: true; Qwen2: true; Llama: attention_bias
  bool o_bias = false;          // GPT-2: true; Llama: attention_bias; Qwen2: false
  bool tie_embeddings = true;   // lm_head shares wte
  int bos_token_id = -1;        // -1: none given
  int eos_token_id = -1;

  bool is_gpt2() const { return arch == Arch::GPT2; }
  int q_dim() const { return n_head * head_dim; }
  int kv_dim() const { return n_kv_head * head_dim; }
  int qkv_dim() const { return q_dim() + 2 * kv_dim(); }

  // Throws score::Error(InvalidArgument) naming the field when the numbers are
  // inconsistent (zero sizes, H % KVH != 0, odd head_dim with rotary, ...).
  void validate(const std::string& where) const;
};

// Parse a Hugging Face config.json text. `path` is only used in error
// messages, which name the file and the field: "config.json: field
// 'num_attention_heads' ...". Unknown model_type or unsupported knobs
// (rope_scaling, mlp_bias, ...) throw Unsupported.
ModelConfig parse_config_json(const std::string& text, const std::string& path);

// The Hugging Face config.json for this configuration (architectures,
// model_type and the family's field names), so other tools open a saved model.
std::string config_to_json(const ModelConfig& cfg);

}  // namespace score
