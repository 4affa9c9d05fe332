// CPU kernels: one file per layer (native/cpu/<layer>.cpp), each with its
// forward and backward. Every kernel is a template over the scalar type F and
// is instantiated for float (the product) and double (finite-difference
// gradient checks). All tensors are row-major; N = B*T rows.
//
// Conventions (as in karpathy/llm.c):
//  - forward kernels overwrite their outputs;
//  - backward kernels ADD into every gradient they produce (d-inputs and
//    d-parameters), so that gradients accumulate over layers and micro-batches;
//    the caller zeroes. Any gradient pointer documented "nullable" may be null.
//  - OpenMP parallelises over rows / heads where it pays.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>

namespace score::cpu {

// ---- matmul.cpp: a linear layer, weight stored (OC, IC) ----
// out (N, OC) = inp (N, IC) @ weight^T + bias;  bias (OC) nullable.
template <typename F>
void matmul_forward(F* out, const F* inp, const F* weight, const F* bias, int N, int IC, int OC);
// dinp (N, IC) += dout @ weight;  dweight (OC, IC) += dout^T @ inp;  dbias (OC) += colsum(dout).
// dinp, dweight, dbias nullable.
template <typename F>
void matmul_backward(F* dinp, F* dweight, F* dbias, const F* dout, const F* inp, const F* weight,
                     int N, int IC, int OC);

// ---- embedding.cpp: token (+ learned position) embeddings ----
// out (N, C) = wte[tokens[n]] + (wpe ? wpe[pos[n]] : 0).  tokens, pos (N).
template <typename F>
void embedding_forward(F* out, const int32_t* tokens, const int32_t* pos, const F* wte, const F* wpe,
                       int N, int C);
// dwte (V, C) += scatter of dout;  dwpe (maxT, C) nullable.
template <typename F>
void embedding_backward(F* dwte, F* dwpe, const F* dout, const int32_t* tokens, const int32_t* pos,
                        int N, int C);

// ---- layernorm.cpp: LayerNorm with weight and bias (GPT-2) ----
// out (N, C) = (inp - mean) * rstd * w + b;  saves mean (N), rstd (N) for backward.
template <typename F>
void layernorm_forward(F* out, F* mean, F* rstd, const F* inp, const F* w, const F* b, int N, int C,
                       double eps);
template <typename F>
void layernorm_backward(F* dinp, F* dw, F* db, const F* dout, const F* inp, const F* w,
                        const F* mean, const F* rstd, int N, int C);

// ---- rmsnorm.cpp: RMSNorm (Llama/Qwen2): out = inp * rstd * w, rstd = 1/sqrt(mean(inp^2) + eps) ----
template <typename F>
void rmsnorm_forward(F* out, F* rstd, const F* inp, const F* w, int N, int C, double eps);
template <typename F>
void rmsnorm_backward(F* dinp, F* dw, const F* dout, const F* inp, const F* w, const F* rstd, int N,
                      int C);

// ---- rope.cpp: rotary embeddings, rotate-half convention (Hugging Face Llama) ----
// Tables: cos, sin (maxT, hd/2) with angle(p, i) = p * theta^(-2i/hd).
template <typename F>
void rope_tables(F* cos, F* sin, int max_pos, int hd, double theta);
// In place on the q heads (first H*hd columns) and k heads (next KVH*hd columns)
// of each row of qkv (N, QKV); row n is at position pos[n]. For each head,
// x1 = x[:hd/2], x2 = x[hd/2:]:  out1 = x1 cos - x2 sin, out2 = x2 cos + x1 sin.
template <typename F>
void rope_forward(F* qkv, const int32_t* pos, const F* cos, const F* sin, int N, int QKV, int H,
                  int KVH, int hd);
// In place on dqkv: the gradient through the rotation is the inverse rotation.
template <typename F>
void rope_backward(F* dqkv, const int32_t* pos, const F* cos, const F* sin, int N, int QKV, int H,
                   int KVH, int hd);

// ---- attention.cpp: causal multi-head attention with grouped-query heads ----
// qkv (B, T, QKV) holds q (H heads), k (KVH heads), v (KVH heads) per row; query
// head h reads kv head h / (H / KVH). Scale 1/sqrt(hd).
// out (B, T, H*hd); att (B, H, T, T) keeps the softmax probabilities (row t uses
// columns 0..t; the rest is zero).
template <typename F>
void attention_forward(F* out, F* att, const F* qkv, int B, int T, int H, int KVH, int hd);
// dqkv (B, T, QKV) += ...
template <typename F>
void attention_backward(F* dqkv, const F* dout, const F* qkv, const F* att, int B, int T, int H,
                        int KVH, int hd);

// ---- gelu.cpp: GELU, tanh approximation (GPT-2's gelu_new) ----
template <typename F>
void gelu_forward(F* out, const F* inp, size_t n);
template <typename F>
void gelu_backward(F* dinp, const F* inp, const F* dout, size_t n);  // dinp += ...

// ---- swiglu.cpp: inp (N, 2F) = [gate | up]; out (N, F) = silu(gate) * up ----
template <typename F>
void swiglu_forward(F* out, const F* inp, int N, int Fd);
template <typename F>
void swiglu_backward(F* dinp, const F* inp, const F* dout, int N, int Fd);  // dinp (N, 2F) += ...

// ---- classifier.cpp: the lm_head fused with log-softmax and the per-token loss ----
// For every row n with target[n] >= 0:
//   logits = hidden[n] @ wlm^T (V);  logp[n] = logits[target[n]] - logsumexp(logits);
//   entropy[n] = -sum softmax * log softmax   (entropy nullable)
// Rows with target[n] < 0 get logp = 0, entropy = 0 and no gradient.
// If coef is set, it returns g = dLoss/dlogp[n] given (n, logp[n]); then, since
// dlogp/dlogits = onehot(target) - softmax:
//   dhidden[n] += g * (onehot - softmax) @ wlm;   dwlm (V, C) += outer(g * (onehot - softmax), hidden[n]).
// No (N, V) tensor is kept: rows are processed in chunks with a (chunk, V)
// scratch buffer allocated inside. dhidden/dwlm nullable (only with coef).
template <typename F>
void classifier_forward_backward(F* logp, F* entropy, F* dhidden, F* dwlm, const F* hidden,
                                 const F* wlm, const int32_t* target, int N, int C, int V,
                                 const std::function<double(int, double)>* coef);

// ---- adamw.cpp: one AdamW update of n parameters (float32 only) ----
// g = grads * grad_scale (grad_scale folds in global-norm clipping and
// averaging); m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2;
// p -= lr * (mhat / (sqrt(vhat) + eps) + weight_decay * p), with bias
// corrections mhat = m / (1 - b1^t), vhat = v / (1 - b2^t) (t >= 1),
// decoupled weight decay as in torch.optim.AdamW.
void adamw_update(float* params, const float* grads, float* m, float* v, size_t n, float lr,
                  float beta1, float beta2, float eps, float weight_decay, int t, float grad_scale);

// Sum of squares of n values (for the global gradient norm), in double.
double sum_squares(const float* x, size_t n);

}  // namespace score::cpu

namespace score::cpu {

// ---- attention_cached.cpp: attention of single rows against a KV cache (generation) ----
// Row r (query q = qkv[r, :H*hd]) belongs to cache slot slot[r] and sits at
// position pos[r]; it attends causally to positions 0..pos[r] of its slot.
// kcache, vcache: (slots, KVH, len, hd). out (N, H*hd). Forward only.
template <typename F>
void attention_cached_forward(F* out, const F* qkv, const F* kcache, const F* vcache,
                              const int32_t* slot, const int32_t* pos, int N, int QKV, int H,
                              int KVH, int hd, int len);

}  // namespace score::cpu
