// The decoder-only transformer on the CPU, assembled from the layer kernels of
// kernels.h. Templated over the scalar type: float is the product, double runs
// the whole-model finite-difference gradient check.
//
// forward() keeps every activation that backward() needs (llm.c style); the
// buffers grow to the largest (B, T) seen and are reused.
#pragma once
#include <cstdint>
#include <vector>

#include "cpu/packed_linear.h"
#include "score/config.h"
#include "score/params.h"

namespace score::cpu {

template <typename F>
class Transformer {
 public:
  Transformer(const ModelConfig& cfg, bool trainable);

  const ModelConfig& config() const { return cfg_; }
  const ParamLayout& layout() const { return layout_; }
  std::vector<F> params;  // (numel) in ParamLayout order
  std::vector<F> grads;   // same layout; empty when not trainable (callers may allocate it later)

  // Runs the blocks and the final norm on tokens (B, T) at positions pos (B, T).
  // Returns the final hidden states (B*T, C), valid until the next forward.
  const F* forward(const int32_t* tokens, const int32_t* pos, int B, int T);
  // Backpropagates dhidden (B*T, C) (the gradient at the final hidden states)
  // through the last forward() and ADDS the parameter gradients into grads.
  void backward(const F* dhidden);

  // lm_head weights (V, C) and their gradient slot.
  const F* lm_head() const { return params.data() + layout_.lm_head_w; }
  F* lm_head_grad() { return grads.data() + layout_.lm_head_w; }

  // Bytes held: the forward values kept for backward(), the backward pass's work buffers
  // (plus the decode scratch), and the two together as the memory checks count them.
  size_t saved_activation_bytes() const;
  size_t scratch_bytes() const;
  size_t activation_bytes() const;
  // What ensure(B, T) would hold in total, before allocating it (for memory checks).
  static size_t activation_bytes_for(const ModelConfig& cfg, int B, int T, bool backward);

  // ---- generation ----
  // The KV cache: per layer, K and V of shape (slots, KVH, len, hd), so that one
  // (sequence, kv head) is a contiguous run of positions for the attention dots.
  struct KVCache {
    int slots = 0, len = 0;
    std::vector<std::vector<F>> k, v;  // [layer] (slots, KVH, len, hd)
  };
  static size_t cache_bytes(const ModelConfig& cfg, int slots, int len);
  void init_cache(KVCache& cache, int slots, int len) const;
  // Copies positions [0, n) of slot `from` into slot `to` (n samples share one prefill).
  void copy_cache_slot(KVCache& cache, int from, int to, int n) const;
  // The linear weights packed for products with few rows (packed_linear.h), made once per
  // generation for its decode steps: per layer qkv, attn_o, fc (gate_up), proj (down),
  // and the lm_head. A copy of about the parameters' size.
  struct DecodeWeights {
    struct Layer {
      PackedLinear qkv, attn_o, up, down;
    };
    std::vector<Layer> layers;
    PackedLinear lm_head;
  };
  static size_t decode_weight_bytes(const ModelConfig& cfg);
  // Requires packed_linear_supported(); float models only.
  void pack_decode_weights(DecodeWeights& w) const;
  // Rows r = 0..N-1 hold token tokens[r] of sequence slot[r] at position pos[r].
  // Every row's k/v go into the cache first, then each row attends to its slot's
  // positions 0..pos[r]: one function serves the prefill (all prompt rows at
  // once) and the decode steps (one row per active sequence). With `packed`, the
  // linear layers read it instead of the parameters (same values, faster for few rows).
  // Returns the final hidden states (N, C), valid until the next call.
  const F* forward_cached(const int32_t* tokens, const int32_t* pos, const int32_t* slot, int N,
                          KVCache& cache, const DecodeWeights* packed = nullptr);

 private:
  void ensure(int B, int T);
  const F* P(size_t off) const { return off == ParamLayout::kNone ? nullptr : params.data() + off; }
  F* G(size_t off) { return off == ParamLayout::kNone ? nullptr : grads.data() + off; }

  ModelConfig cfg_;
  ParamLayout layout_;
  std::vector<F> rope_cos_, rope_sin_;  // (maxT, hd/2), rotary archs only

  // Saved activations of the last forward. N = B*T rows.
  int B_ = 0, T_ = 0;
  size_t cap_ = 0, cap_att_ = 0;  // rows and attention entries the buffers hold
  const int32_t* tokens_ = nullptr;
  const int32_t* pos_ = nullptr;
  struct LayerActs {
    std::vector<F> x;         // (N, C) block input (residual stream)
    std::vector<F> ln1;       // (N, C)
    std::vector<F> ln1_mean;  // (N)   LayerNorm only
    std::vector<F> ln1_rstd;  // (N)
    std::vector<F> qkv;       // (N, QKV) after rotary
    std::vector<F> att;       // (B, H, T, T) attention probabilities
    std::vector<F> atty;      // (N, H*hd) attention output before attn_o
    std::vector<F> xmid;      // (N, C) x + attention
    std::vector<F> ln2;       // (N, C)
    std::vector<F> ln2_mean;  // (N)
    std::vector<F> ln2_rstd;  // (N)
    std::vector<F> h;         // (N, F) GPT-2 fc output (pre-GELU); (N, 2F) gate|up
    std::vector<F> act;       // (N, F) GELU or SwiGLU output
  };
  std::vector<LayerActs> acts_;
  std::vector<F> xfinal_;   // (N, C) residual after the last block
  std::vector<F> lnf_;      // (N, C)
  std::vector<F> lnf_mean_, lnf_rstd_;  // (N)
  // forward_cached scratch, (N, ...) each; grow-only.
  struct DecodeScratch {
    std::vector<F> x, ln, mean, rstd, qkv, atty, xmid, h, act;
  } dec_;
  // Backward scratch, (N, ...) each.
  std::vector<F> dres_, dln_, dqkv_, datty_, dh_, dact_;
};

}  // namespace score::cpu
