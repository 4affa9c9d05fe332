// Hugging Face checkpoint folders <-> the flat parameter buffer of params.h.
//
// A checkpoint folder holds config.json and either model.safetensors or
// model.safetensors.index.json ({"weight_map": {tensor: shard file}}) with its
// shards. Tensor names and shapes are Hugging Face's:
//   GPT-2 ("transformer." prefix optional): wte, wpe, h.{l}.ln_1/attn.c_attn/
//     attn.c_proj/ln_2/mlp.c_fc/mlp.c_proj, ln_f, lm_head. Conv1D weights are
//     stored [in, out] and transposed into the (out, in) layout.
//   Llama/Qwen2: model.embed_tokens, model.layers.{l}.input_layernorm,
//     self_attn.{q,k,v,o}_proj, post_attention_layernorm,
//     mlp.{gate,up,down}_proj, model.norm, lm_head. q/k/v are stacked into
//     qkv_w/qkv_b, gate/up into gate_up_w.
// Ignored on load: GPT-2's h.{l}.attn.bias / attn.masked_bias buffers and
// *.rotary_emb.inv_freq. F32, F16, BF16 and F64 tensors load (converted to
// float); saving writes F32.
//
// Errors (score::Error), each naming the file and the tensor:
//   NotFound  missing config.json / model file / tensor
//   BadFile   malformed files, unexpected or duplicated tensors, wrong shapes,
//             a shard name that leaves the folder
//   Unsupported  config knobs we do not implement, non-float tensor dtypes
//   InvalidArgument  inconsistent config values
//   Io        OS-level read/write failures
#pragma once
#include <string>
#include <vector>

#include "score/config.h"
#include "score/params.h"

namespace score {

struct Checkpoint {
  ModelConfig config;
  std::vector<float> params;  // ParamLayout(config).numel() floats, in layout order
};

// Loads dir/config.json and the weights. When config.json says
// tie_word_embeddings=false but there is no lm_head.weight, the model is
// treated as tied (config.tie_embeddings is set to true); when tied, a
// present lm_head.weight is ignored.
Checkpoint load_checkpoint(const std::string& dir);

// Writes dir/model.safetensors (F32, Hugging Face names, metadata
// {"format": "pt"}) and dir/config.json, each atomically, creating dir (and
// parents) when needed; removes a stale dir/model.safetensors.index.json.
// params holds ParamLayout(cfg).numel() floats.
void save_checkpoint(const std::string& dir, const ModelConfig& cfg, const float* params);

// One safetensors file with Hugging Face names (e.g. golden gradients) mapped
// with the same rules into ParamLayout(cfg) order. cfg is used as given (no
// tying inference): lm_head.weight must be present exactly when cfg is untied
// (when tied it is ignored if present).
std::vector<float> load_flat_tensors(const std::string& safetensors_path, const ModelConfig& cfg);

// Reads and parses a config.json file (NotFound when absent).
ModelConfig read_config_file(const std::string& path);

// One Hugging Face tensor and where it lands in the flat buffer.
struct HfTensor {
  std::string name;            // Hugging Face name (GPT-2: without "transformer.")
  std::vector<int64_t> shape;  // Hugging Face shape
  size_t offset = 0;           // first element in the flat buffer
  bool transpose = false;      // GPT-2 Conv1D: HF [in, out] is stored as (out, in)
};

// Every tensor a checkpoint of cfg holds, in layout order (lm_head.weight only
// when untied). `layout` must be ParamLayout(cfg).
std::vector<HfTensor> hf_tensor_map(const ModelConfig& cfg, const ParamLayout& layout);

}  // namespace score
