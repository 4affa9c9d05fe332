// The parameter table: every parameter of the model lives in one flat float
// allocation (gradients and AdamW moments use the same layout), and this table
// says where each tensor is. Internal tensors are laid out for the kernels:
// every linear weight is (out, in) row-major, q/k/v are fused into one qkv
// weight, and the SwiGLU gate/up projections into one gate_up weight.
//
// Layout, in order (per-layer tensors repeat for l = 0..L-1):
//   wte          (V, C)
//   wpe          (maxT, C)                 GPT-2 only
//   h.l.ln1_w    (C)
//   h.l.ln1_b    (C)                       GPT-2 only
//   h.l.qkv_w    (QKV, C)   QKV = (H + 2 KVH) hd; rows: q heads, k heads, v heads
//   h.l.qkv_b    (QKV)                     if qkv_bias
//   h.l.attn_o_w (C, H hd)
//   h.l.attn_o_b (C)                       if o_bias
//   h.l.ln2_w    (C)
//   h.l.ln2_b    (C)                       GPT-2 only
//   GPT-2:       h.l.fc_w (F, C), h.l.fc_b (F), h.l.proj_w (C, F), h.l.proj_b (C)
//   Llama/Qwen2: h.l.gate_up_w (2F, C) rows [0,F) gate, [F,2F) up; h.l.down_w (C, F)
//   lnf_w        (C)
//   lnf_b        (C)                       GPT-2 only
//   lm_head_w    (V, C)                    only when not tied
#pragma once
#include <cstddef>
#include <string>
#include <vector>

#include "score/config.h"

namespace score {

struct TensorSpec {
  std::string name;            // internal name, e.g. "h.3.qkv_w"
  std::vector<int64_t> shape;  // row-major
  size_t offset = 0;           // in elements from the start of the flat buffer
  size_t numel = 0;
  bool decay = false;          // AdamW weight decay applies (matrices; not norms, biases)
};

// Offsets of one layer's tensors (SIZE_MAX where the tensor does not exist).
struct LayerOffsets {
  size_t ln1_w, ln1_b, qkv_w, qkv_b, attn_o_w, attn_o_b, ln2_w, ln2_b;
  size_t fc_w, fc_b, proj_w, proj_b;  // GPT-2
  size_t gate_up_w, down_w;           // Llama/Qwen2
};

class ParamLayout {
 public:
  explicit ParamLayout(const ModelConfig& cfg);
  static constexpr size_t kNone = static_cast<size_t>(-1);

  const std::vector<TensorSpec>& tensors() const { return tensors_; }
  size_t numel() const { return numel_; }
  const TensorSpec* find(const std::string& name) const;  // nullptr when absent

  size_t wte = kNone, wpe = kNone, lnf_w = kNone, lnf_b = kNone;
  size_t lm_head_w = kNone;  // == wte when tied
  std::vector<LayerOffsets> layers;

 private:
  size_t add(const std::string& name, std::vector<int64_t> shape, bool decay);
  std::vector<TensorSpec> tensors_;
  size_t numel_ = 0;
};

}  // namespace score
