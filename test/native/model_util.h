// Shared helpers of the model-level C++ tests: tiny configurations of each
// family and a loss evaluation through the CPU transformer.
#pragma once
#include <cmath>
#include <functional>
#include <vector>

#include "cpu/kernels.h"
#include "cpu/transformer.h"
#include "score/config.h"
#include "score/rng.h"

namespace score_test {

// Tiny configurations exercising every knob: GPT-2 (LayerNorm, GELU, learned
// positions, tied), Llama (GQA 4 heads / 2 kv heads, untied, attention bias),
// Qwen2 (q/k/v bias only, tied, large rope_theta).
inline score::ModelConfig tiny_config(score::Arch arch) {
  score::ModelConfig c;
  c.arch = arch;
  c.vocab_size = 13;
  c.n_layer = 2;
  c.d_model = 8;
  c.n_head = arch == score::Arch::GPT2 ? 2 : 4;
  c.n_kv_head = arch == score::Arch::GPT2 ? 2 : 2;
  c.head_dim = arch == score::Arch::GPT2 ? 4 : 2;
  c.d_ff = 12;
  c.max_pos = 8;
  c.norm_eps = 1e-5;
  c.rope_theta = arch == score::Arch::Qwen2 ? 1e6 : 10000.0;
  c.qkv_bias = true;  // GPT-2 and Qwen2 always; Llama through attention_bias
  c.o_bias = arch != score::Arch::Qwen2;
  c.tie_embeddings = arch != score::Arch::Llama;
  return c;
}

// Random weights large enough that every path matters (norm weights near 1).
template <typename F>
void randomize(std::vector<F>& p, const score::ParamLayout& layout, uint64_t seed, double std = 0.3) {
  score::Rng rng(seed);
  for (const score::TensorSpec& t : layout.tensors()) {
    const bool norm_w = t.name.find("ln") != std::string::npos && t.name.back() == 'w';
    for (size_t i = 0; i < t.numel; i++)
      p[t.offset + i] = static_cast<F>(norm_w ? 1.0 + 0.1 * rng.normal() : std * rng.normal());
  }
}

struct Batch {
  int B, T;
  std::vector<int32_t> tokens, pos, target;  // (B, T)
  std::vector<double> weight;                // (B*T) per-row loss weight
};

// Right-padded rows of the given lengths; row n's target is tokens[n+1] inside the row.
inline Batch make_batch(int V, int T, const std::vector<int>& lengths, uint64_t seed) {
  Batch b;
  b.B = static_cast<int>(lengths.size());
  b.T = T;
  score::Rng rng(seed);
  const size_t N = size_t(b.B) * T;
  b.tokens.resize(N);
  b.pos.resize(N);
  b.target.assign(N, -1);
  b.weight.assign(N, 0.0);
  for (int r = 0; r < b.B; r++)
    for (int t = 0; t < T; t++) {
      b.tokens[r * T + t] = static_cast<int32_t>(rng.next_u64() % V);
      b.pos[r * T + t] = t;
    }
  for (int r = 0; r < b.B; r++)
    for (int t = 0; t + 1 < lengths[r]; t++) {
      b.target[r * T + t] = b.tokens[r * T + t + 1];
      b.weight[r * T + t] = 0.5 + rng.uniform();
    }
  return b;
}

// L = sum_n weight[n] * -logp[n]. With `grad`, also backpropagates into net.grads.
template <typename F>
double weighted_nll(score::cpu::Transformer<F>& net, const Batch& b, bool grad) {
  const score::ModelConfig& c = net.config();
  const int N = b.B * b.T;
  const F* hidden = net.forward(b.tokens.data(), b.pos.data(), b.B, b.T);
  std::vector<F> logp(N), dhidden(grad ? size_t(N) * c.d_model : 0);
  std::function<double(int, double)> coef = [&](int n, double) { return -b.weight[n]; };
  score::cpu::classifier_forward_backward<F>(logp.data(), nullptr, grad ? dhidden.data() : nullptr,
                                             grad ? net.lm_head_grad() : nullptr, hidden,
                                             net.lm_head(), b.target.data(), N, c.d_model,
                                             c.vocab_size, grad ? &coef : nullptr);
  if (grad) net.backward(dhidden.data());
  double L = 0;
  for (int n = 0; n < N; n++) L -= b.weight[n] * double(logp[n]);
  return L;
}

}  // namespace score_test
