#include "cpu/transformer.h"

#include <algorithm>
#include <cstring>
#include <type_traits>

#include "cpu/kernels.h"
#include "score/errors.h"

namespace score::cpu {

template <typename F>
Transformer<F>::Transformer(const ModelConfig& cfg, bool trainable) : cfg_(cfg), layout_(cfg) {
  params.assign(layout_.numel(), F(0));
  if (trainable) grads.assign(layout_.numel(), F(0));
  if (!cfg_.is_gpt2()) {
    const size_t half = static_cast<size_t>(cfg_.head_dim / 2);
    rope_cos_.resize(static_cast<size_t>(cfg_.max_pos) * half);
    rope_sin_.resize(static_cast<size_t>(cfg_.max_pos) * half);
    rope_tables(rope_cos_.data(), rope_sin_.data(), cfg_.max_pos, cfg_.head_dim, cfg_.rope_theta);
  }
  acts_.resize(cfg_.n_layer);
}

// Grows the activation buffers to hold (B, T); never shrinks.
template <typename F>
void Transformer<F>::ensure(int B, int T) {
  const size_t N = static_cast<size_t>(B) * T;
  const size_t natt = static_cast<size_t>(B) * cfg_.n_head * T * T;
  const bool need_backward = !grads.empty() && dres_.size() < N * cfg_.d_model;
  if (N <= cap_ && natt <= cap_att_ && !need_backward) return;
  const size_t C = cfg_.d_model, QKV = cfg_.qkv_dim(), Q = cfg_.q_dim(), Fd = cfg_.d_ff;
  const size_t H = cfg_.is_gpt2() ? Fd : 2 * Fd;
  const bool ln = cfg_.is_gpt2();
  for (LayerActs& a : acts_) {
    a.x.resize(N * C);
    a.ln1.resize(N * C);
    a.ln1_mean.resize(ln ? N : 0);
    a.ln1_rstd.resize(N);
    a.qkv.resize(N * QKV);
    a.att.resize(natt);
    a.atty.resize(N * Q);
    a.xmid.resize(N * C);
    a.ln2.resize(N * C);
    a.ln2_mean.resize(ln ? N : 0);
    a.ln2_rstd.resize(N);
    a.h.resize(N * H);
    a.act.resize(N * Fd);
  }
  xfinal_.resize(N * C);
  lnf_.resize(N * C);
  lnf_mean_.resize(ln ? N : 0);
  lnf_rstd_.resize(N);
  if (!grads.empty()) {
    dres_.resize(N * C);
    dln_.resize(N * C);
    dqkv_.resize(N * QKV);
    datty_.resize(N * Q);
    dh_.resize(N * H);
    dact_.resize(N * Fd);
  }
  cap_ = N;
  cap_att_ = natt;
}

// Mirrors ensure(): per layer x, ln1, xmid, ln2 (C), qkv, atty, h, act, attention (B, H, T, T)
// and the norm statistics; the final norm; the backward scratch when training.
template <typename F>
size_t Transformer<F>::activation_bytes_for(const ModelConfig& cfg, int B, int T, bool backward) {
  const size_t N = static_cast<size_t>(B) * T;
  const size_t natt = static_cast<size_t>(B) * cfg.n_head * T * T;
  const size_t C = cfg.d_model, QKV = cfg.qkv_dim(), Q = cfg.q_dim(), Fd = cfg.d_ff;
  const size_t H = cfg.is_gpt2() ? Fd : 2 * Fd;
  const size_t stats = (cfg.is_gpt2() ? 2 : 1) * N;
  const size_t layer = 4 * N * C + N * QKV + natt + N * Q + N * H + N * Fd + 2 * stats;
  size_t n = cfg.n_layer * layer + 2 * N * C + stats;
  if (backward) n += 2 * N * C + N * QKV + N * Q + N * H + N * Fd;
  return n * sizeof(F);
}

template <typename F>
size_t Transformer<F>::saved_activation_bytes() const {
  size_t n = xfinal_.size() + lnf_.size() + lnf_mean_.size() + lnf_rstd_.size();
  for (const LayerActs& a : acts_)
    n += a.x.size() + a.ln1.size() + a.ln1_mean.size() + a.ln1_rstd.size() + a.qkv.size() +
         a.att.size() + a.atty.size() + a.xmid.size() + a.ln2.size() + a.ln2_mean.size() +
         a.ln2_rstd.size() + a.h.size() + a.act.size();
  return n * sizeof(F);
}

template <typename F>
size_t Transformer<F>::scratch_bytes() const {
  const DecodeScratch& s = dec_;
  const size_t n = dres_.size() + dln_.size() + dqkv_.size() + datty_.size() + dh_.size() + dact_.size() +
                   s.x.size() + s.ln.size() + s.mean.size() + s.rstd.size() + s.qkv.size() + s.atty.size() +
                   s.xmid.size() + s.h.size() + s.act.size();
  return n * sizeof(F);
}

// The backward buffers count with the activations (decode scratch excluded), as
// activation_bytes_for() estimates them.
template <typename F>
size_t Transformer<F>::activation_bytes() const {
  const size_t n = dres_.size() + dln_.size() + dqkv_.size() + datty_.size() + dh_.size() + dact_.size();
  return saved_activation_bytes() + n * sizeof(F);
}

template <typename F>
const F* Transformer<F>::forward(const int32_t* tokens, const int32_t* pos, int B, int T) {
  ensure(B, T);
  B_ = B;
  T_ = T;
  tokens_ = tokens;
  pos_ = pos;
  const int N = B * T, C = cfg_.d_model, QKV = cfg_.qkv_dim(), Q = cfg_.q_dim(), Fd = cfg_.d_ff;
  const int H = cfg_.n_head, KVH = cfg_.n_kv_head, hd = cfg_.head_dim;
  const bool gpt2 = cfg_.is_gpt2();
  const double eps = cfg_.norm_eps;

  embedding_forward(acts_[0].x.data(), tokens, pos, P(layout_.wte), P(layout_.wpe), N, C);
  for (int l = 0; l < cfg_.n_layer; l++) {
    const LayerOffsets& o = layout_.layers[l];
    LayerActs& a = acts_[l];
    F* xout = l + 1 < cfg_.n_layer ? acts_[l + 1].x.data() : xfinal_.data();
    // attention sub-block: x -> norm -> qkv -> rotary -> attention -> attn_o -> + x
    if (gpt2)
      layernorm_forward(a.ln1.data(), a.ln1_mean.data(), a.ln1_rstd.data(), a.x.data(), P(o.ln1_w),
                        P(o.ln1_b), N, C, eps);
    else
      rmsnorm_forward(a.ln1.data(), a.ln1_rstd.data(), a.x.data(), P(o.ln1_w), N, C, eps);
    matmul_forward(a.qkv.data(), a.ln1.data(), P(o.qkv_w), P(o.qkv_b), N, C, QKV);
    if (!gpt2)
      rope_forward(a.qkv.data(), pos, rope_cos_.data(), rope_sin_.data(), N, QKV, H, KVH, hd);
    attention_forward(a.atty.data(), a.att.data(), a.qkv.data(), B, T, H, KVH, hd);
    matmul_forward(a.xmid.data(), a.atty.data(), P(o.attn_o_w), P(o.attn_o_b), N, Q, C);
    for (size_t i = 0; i < static_cast<size_t>(N) * C; i++) a.xmid[i] += a.x[i];
    // MLP sub-block: xmid -> norm -> fc / gate_up -> GELU / SwiGLU -> proj / down -> + xmid
    if (gpt2) {
      layernorm_forward(a.ln2.data(), a.ln2_mean.data(), a.ln2_rstd.data(), a.xmid.data(),
                        P(o.ln2_w), P(o.ln2_b), N, C, eps);
      matmul_forward(a.h.data(), a.ln2.data(), P(o.fc_w), P(o.fc_b), N, C, Fd);
      gelu_forward(a.act.data(), a.h.data(), static_cast<size_t>(N) * Fd);
      matmul_forward(xout, a.act.data(), P(o.proj_w), P(o.proj_b), N, Fd, C);
    } else {
      rmsnorm_forward(a.ln2.data(), a.ln2_rstd.data(), a.xmid.data(), P(o.ln2_w), N, C, eps);
      matmul_forward(a.h.data(), a.ln2.data(), P(o.gate_up_w), static_cast<const F*>(nullptr), N,
                     C, 2 * Fd);
      swiglu_forward(a.act.data(), a.h.data(), N, Fd);
      matmul_forward(xout, a.act.data(), P(o.down_w), static_cast<const F*>(nullptr), N, Fd, C);
    }
    for (size_t i = 0; i < static_cast<size_t>(N) * C; i++) xout[i] += a.xmid[i];
  }
  if (gpt2)
    layernorm_forward(lnf_.data(), lnf_mean_.data(), lnf_rstd_.data(), xfinal_.data(),
                      P(layout_.lnf_w), P(layout_.lnf_b), N, C, eps);
  else
    rmsnorm_forward(lnf_.data(), lnf_rstd_.data(), xfinal_.data(), P(layout_.lnf_w), N, C, eps);
  return lnf_.data();
}

template <typename F>
void Transformer<F>::backward(const F* dhidden) {
  const int B = B_, T = T_, N = B * T, C = cfg_.d_model, QKV = cfg_.qkv_dim(), Q = cfg_.q_dim();
  const int Fd = cfg_.d_ff, H = cfg_.n_head, KVH = cfg_.n_kv_head, hd = cfg_.head_dim;
  const bool gpt2 = cfg_.is_gpt2();
  const size_t NC = static_cast<size_t>(N) * C;
  auto zero = [](std::vector<F>& v, size_t n) { std::fill(v.begin(), v.begin() + n, F(0)); };

  // dres: gradient at the residual stream, walking down from the top.
  zero(dres_, NC);
  if (gpt2)
    layernorm_backward(dres_.data(), G(layout_.lnf_w), G(layout_.lnf_b), dhidden, xfinal_.data(),
                       P(layout_.lnf_w), lnf_mean_.data(), lnf_rstd_.data(), N, C);
  else
    rmsnorm_backward(dres_.data(), G(layout_.lnf_w), dhidden, xfinal_.data(), P(layout_.lnf_w),
                     lnf_rstd_.data(), N, C);

  for (int l = cfg_.n_layer - 1; l >= 0; l--) {
    const LayerOffsets& o = layout_.layers[l];
    LayerActs& a = acts_[l];
    // MLP: dres is the gradient at the block output = at the MLP output.
    zero(dact_, static_cast<size_t>(N) * Fd);
    zero(dln_, NC);
    if (gpt2) {
      zero(dh_, static_cast<size_t>(N) * Fd);
      matmul_backward(dact_.data(), G(o.proj_w), G(o.proj_b), dres_.data(), a.act.data(),
                      P(o.proj_w), N, Fd, C);
      gelu_backward(dh_.data(), a.h.data(), dact_.data(), static_cast<size_t>(N) * Fd);
      matmul_backward(dln_.data(), G(o.fc_w), G(o.fc_b), dh_.data(), a.ln2.data(), P(o.fc_w), N, C,
                      Fd);
      layernorm_backward(dres_.data(), G(o.ln2_w), G(o.ln2_b), dln_.data(), a.xmid.data(),
                         P(o.ln2_w), a.ln2_mean.data(), a.ln2_rstd.data(), N, C);
    } else {
      zero(dh_, static_cast<size_t>(N) * 2 * Fd);
      matmul_backward(dact_.data(), G(o.down_w), static_cast<F*>(nullptr), dres_.data(),
                      a.act.data(), P(o.down_w), N, Fd, C);
      swiglu_backward(dh_.data(), a.h.data(), dact_.data(), N, Fd);
      matmul_backward(dln_.data(), G(o.gate_up_w), static_cast<F*>(nullptr), dh_.data(),
                      a.ln2.data(), P(o.gate_up_w), N, C, 2 * Fd);
      rmsnorm_backward(dres_.data(), G(o.ln2_w), dln_.data(), a.xmid.data(), P(o.ln2_w),
                       a.ln2_rstd.data(), N, C);
    }
    // Attention: dres is now the gradient at xmid = at the attention output.
    zero(datty_, static_cast<size_t>(N) * Q);
    zero(dqkv_, static_cast<size_t>(N) * QKV);
    zero(dln_, NC);
    matmul_backward(datty_.data(), G(o.attn_o_w), G(o.attn_o_b), dres_.data(), a.atty.data(),
                    P(o.attn_o_w), N, Q, C);
    attention_backward(dqkv_.data(), datty_.data(), a.qkv.data(), a.att.data(), B, T, H, KVH, hd);
    if (!gpt2)
      rope_backward(dqkv_.data(), pos_, rope_cos_.data(), rope_sin_.data(), N, QKV, H, KVH, hd);
    matmul_backward(dln_.data(), G(o.qkv_w), G(o.qkv_b), dqkv_.data(), a.ln1.data(), P(o.qkv_w), N,
                    C, QKV);
    if (gpt2)
      layernorm_backward(dres_.data(), G(o.ln1_w), G(o.ln1_b), dln_.data(), a.x.data(), P(o.ln1_w),
                         a.ln1_mean.data(), a.ln1_rstd.data(), N, C);
    else
      rmsnorm_backward(dres_.data(), G(o.ln1_w), dln_.data(), a.x.data(), P(o.ln1_w),
                       a.ln1_rstd.data(), N, C);
  }
  embedding_backward(G(layout_.wte), G(layout_.wpe), dres_.data(), tokens_, pos_, N, C);
}

template <typename F>
size_t Transformer<F>::cache_bytes(const ModelConfig& c, int slots, int len) {
  return 2 * sizeof(F) * static_cast<size_t>(c.n_layer) * slots * c.n_kv_head * len * c.head_dim;
}

template <typename F>
void Transformer<F>::init_cache(KVCache& cache, int slots, int len) const {
  const size_t n = static_cast<size_t>(slots) * cfg_.n_kv_head * len * cfg_.head_dim;
  cache.slots = slots;
  cache.len = len;
  cache.k.resize(cfg_.n_layer);
  cache.v.resize(cfg_.n_layer);
  // Earlier contents stay: attention reads positions 0..pos of a slot, and each is written
  // (prefill or decode) before it is read. Too small a buffer is freed before growing.
  for (int l = 0; l < cfg_.n_layer; l++)
    for (std::vector<F>* b : {&cache.k[l], &cache.v[l]}) {
      if (b->capacity() < n) std::vector<F>().swap(*b);
      b->resize(n);
    }
}

template <typename F>
void Transformer<F>::copy_cache_slot(KVCache& cache, int from, int to, int n) const {
  const size_t hd = cfg_.head_dim, len = cache.len;
  for (int l = 0; l < cfg_.n_layer; l++)
    for (int h = 0; h < cfg_.n_kv_head; h++) {
      const size_t src = ((static_cast<size_t>(from) * cfg_.n_kv_head + h) * len) * hd;
      const size_t dst = ((static_cast<size_t>(to) * cfg_.n_kv_head + h) * len) * hd;
      std::copy(cache.k[l].begin() + src, cache.k[l].begin() + src + n * hd, cache.k[l].begin() + dst);
      std::copy(cache.v[l].begin() + src, cache.v[l].begin() + src + n * hd, cache.v[l].begin() + dst);
    }
}

template <typename F>
size_t Transformer<F>::decode_weight_bytes(const ModelConfig& c) {
  const int C = c.d_model, Fd = c.d_ff;
  const size_t layer = PackedLinear::bytes_for(c.qkv_dim(), C) + PackedLinear::bytes_for(C, c.q_dim()) +
                       PackedLinear::bytes_for(c.is_gpt2() ? Fd : 2 * Fd, C) + PackedLinear::bytes_for(C, Fd);
  return layer * c.n_layer + PackedLinear::bytes_for(c.vocab_size, C);
}

template <typename F>
void Transformer<F>::pack_decode_weights(DecodeWeights& w) const {
  SCORE_CHECK((std::is_same_v<F, float>), Internal, "pack_decode_weights: float models only");
  if constexpr (std::is_same_v<F, float>) {
    const int C = cfg_.d_model, Fd = cfg_.d_ff;
    const bool gpt2 = cfg_.is_gpt2();
    w.layers.resize(cfg_.n_layer);
    for (int l = 0; l < cfg_.n_layer; l++) {
      const LayerOffsets& o = layout_.layers[l];
      typename DecodeWeights::Layer& d = w.layers[l];
      d.qkv.pack(P(o.qkv_w), cfg_.qkv_dim(), C);
      d.attn_o.pack(P(o.attn_o_w), C, cfg_.q_dim());
      if (gpt2) {
        d.up.pack(P(o.fc_w), Fd, C);
        d.down.pack(P(o.proj_w), C, Fd);
      } else {
        d.up.pack(P(o.gate_up_w), 2 * Fd, C);
        d.down.pack(P(o.down_w), C, Fd);
      }
    }
    w.lm_head.pack(lm_head(), cfg_.vocab_size, C);
  }
}

template <typename F>
const F* Transformer<F>::forward_cached(const int32_t* tokens, const int32_t* pos,
                                        const int32_t* slot, int N, KVCache& cache,
                                        const DecodeWeights* packed) {
  const int C = cfg_.d_model, QKV = cfg_.qkv_dim(), Q = cfg_.q_dim(), Fd = cfg_.d_ff;
  const int H = cfg_.n_head, KVH = cfg_.n_kv_head, hd = cfg_.head_dim;
  const bool gpt2 = cfg_.is_gpt2();
  const double eps = cfg_.norm_eps;
  const size_t n = static_cast<size_t>(N);
  DecodeScratch& s = dec_;
  s.x.resize(n * C);
  s.ln.resize(n * C);
  s.mean.resize(n);
  s.rstd.resize(n);
  s.qkv.resize(n * QKV);
  s.atty.resize(n * Q);
  s.xmid.resize(n * C);
  s.h.resize(n * (gpt2 ? Fd : 2 * Fd));
  s.act.resize(n * Fd);

  // out (N, OC) = in (N, IC) @ W^T + bias, from the packed copy when there is one and
  // the rows are few enough for its kernel.
  const bool use_packed = packed && N <= kPackedLinearMaxRows;
  auto linear = [&](F* out, const F* in, const PackedLinear* pw, size_t w_off, size_t b_off,
                    int IC, int OC) {
    if constexpr (std::is_same_v<F, float>) {
      if (pw) return pw->forward(out, in, P(b_off), N);
    }
    matmul_forward(out, in, P(w_off), P(b_off), N, IC, OC);
  };
  embedding_forward(s.x.data(), tokens, pos, P(layout_.wte), P(layout_.wpe), N, C);
  for (int l = 0; l < cfg_.n_layer; l++) {
    const LayerOffsets& o = layout_.layers[l];
    const typename DecodeWeights::Layer* pl = use_packed ? &packed->layers[l] : nullptr;
    if (gpt2)
      layernorm_forward(s.ln.data(), s.mean.data(), s.rstd.data(), s.x.data(), P(o.ln1_w),
                        P(o.ln1_b), N, C, eps);
    else
      rmsnorm_forward(s.ln.data(), s.rstd.data(), s.x.data(), P(o.ln1_w), N, C, eps);
    linear(s.qkv.data(), s.ln.data(), pl ? &pl->qkv : nullptr, o.qkv_w, o.qkv_b, C, QKV);
    if (!gpt2)
      rope_forward(s.qkv.data(), pos, rope_cos_.data(), rope_sin_.data(), N, QKV, H, KVH, hd);
    // Store every row's k and v at (slot, kv head, position) before any row attends.
    for (int r = 0; r < N; r++)
      for (int h = 0; h < KVH; h++) {
        const size_t at = ((static_cast<size_t>(slot[r]) * KVH + h) * cache.len + pos[r]) * hd;
        const F* row = s.qkv.data() + static_cast<size_t>(r) * QKV;
        std::copy(row + Q + h * hd, row + Q + (h + 1) * hd, cache.k[l].begin() + at);
        std::copy(row + Q + KVH * hd + h * hd, row + Q + KVH * hd + (h + 1) * hd,
                  cache.v[l].begin() + at);
      }
    attention_cached_forward(s.atty.data(), s.qkv.data(), cache.k[l].data(), cache.v[l].data(),
                             slot, pos, N, QKV, H, KVH, hd, cache.len);
    linear(s.xmid.data(), s.atty.data(), pl ? &pl->attn_o : nullptr, o.attn_o_w, o.attn_o_b, Q, C);
    for (size_t i = 0; i < n * C; i++) s.xmid[i] += s.x[i];
    if (gpt2) {
      layernorm_forward(s.ln.data(), s.mean.data(), s.rstd.data(), s.xmid.data(), P(o.ln2_w),
                        P(o.ln2_b), N, C, eps);
      linear(s.h.data(), s.ln.data(), pl ? &pl->up : nullptr, o.fc_w, o.fc_b, C, Fd);
      gelu_forward(s.act.data(), s.h.data(), n * Fd);
      linear(s.x.data(), s.act.data(), pl ? &pl->down : nullptr, o.proj_w, o.proj_b, Fd, C);
    } else {
      rmsnorm_forward(s.ln.data(), s.rstd.data(), s.xmid.data(), P(o.ln2_w), N, C, eps);
      linear(s.h.data(), s.ln.data(), pl ? &pl->up : nullptr, o.gate_up_w, ParamLayout::kNone, C, 2 * Fd);
      swiglu_forward(s.act.data(), s.h.data(), N, Fd);
      linear(s.x.data(), s.act.data(), pl ? &pl->down : nullptr, o.down_w, ParamLayout::kNone, Fd, C);
    }
    for (size_t i = 0; i < n * C; i++) s.x[i] += s.xmid[i];  // x = xmid + mlp(xmid)
  }
  if (gpt2)
    layernorm_forward(s.ln.data(), s.mean.data(), s.rstd.data(), s.x.data(), P(layout_.lnf_w),
                      P(layout_.lnf_b), N, C, eps);
  else
    rmsnorm_forward(s.ln.data(), s.rstd.data(), s.x.data(), P(layout_.lnf_w), N, C, eps);
  return s.ln.data();
}

template class Transformer<float>;
template class Transformer<double>;

}  // namespace score::cpu
