#include "score/params.h"

namespace score {

size_t ParamLayout::add(const std::string& name, std::vector<int64_t> shape, bool decay) {
  TensorSpec t;
  t.name = name;
  t.numel = 1;
  for (int64_t d : shape) t.numel *= static_cast<size_t>(d);
  t.shape = std::move(shape);
  t.offset = numel_;
  t.decay = decay;
  numel_ += t.numel;
  tensors_.push_back(std::move(t));
  return tensors_.back().offset;
}

ParamLayout::ParamLayout(const ModelConfig& c) {
  const int64_t V = c.vocab_size, C = c.d_model, F = c.d_ff, QKV = c.qkv_dim(), Q = c.q_dim();
  const bool gpt2 = c.is_gpt2();
  wte = add("wte", {V, C}, true);
  if (gpt2) wpe = add("wpe", {c.max_pos, C}, true);
  layers.resize(c.n_layer);
  for (int l = 0; l < c.n_layer; l++) {
    LayerOffsets& o = layers[l];
    o = LayerOffsets{kNone, kNone, kNone, kNone, kNone, kNone, kNone, kNone,
                     kNone, kNone, kNone, kNone, kNone, kNone};
    const std::string p = "h." + std::to_string(l) + ".";
    o.ln1_w = add(p + "ln1_w", {C}, false);
    if (gpt2) o.ln1_b = add(p + "ln1_b", {C}, false);
    o.qkv_w = add(p + "qkv_w", {QKV, C}, true);
    if (c.qkv_bias) o.qkv_b = add(p + "qkv_b", {QKV}, false);
    o.attn_o_w = add(p + "attn_o_w", {C, Q}, true);
    if (c.o_bias) o.attn_o_b = add(p + "attn_o_b", {C}, false);
    o.ln2_w = add(p + "ln2_w", {C}, false);
    if (gpt2) o.ln2_b = add(p + "ln2_b", {C}, false);
    if (gpt2) {
      o.fc_w = add(p + "fc_w", {F, C}, true);
      o.fc_b = add(p + "fc_b", {F}, false);
      o.proj_w = add(p + "proj_w", {C, F}, true);
      o.proj_b = add(p + "proj_b", {C}, false);
    } else {
      o.gate_up_w = add(p + "gate_up_w", {2 * F, C}, true);
      o.down_w = add(p + "down_w", {C, F}, true);
    }
  }
  lnf_w = add("lnf_w", {C}, false);
  if (gpt2) lnf_b = add("lnf_b", {C}, false);
  lm_head_w = c.tie_embeddings ? wte : add("lm_head_w", {V, C}, true);
}

const TensorSpec* ParamLayout::find(const std::string& name) const {
  for (const TensorSpec& t : tensors_)
    if (t.name == name) return &t;
  return nullptr;
}

}  // namespace score
