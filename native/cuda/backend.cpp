// The CUDA backend: the transformer of native/cpu/transformer.cpp on the device,
// step for step (same layer order, same saved activations), with the fused
// classifier, AdamW and KV-cache generation. float32 master weights, gradients and
// AdamW moments live on the device; matrix products read bf16 and accumulate in
// float32 (kernels.h). One CUDA stream per model; several models share a process
// (no globals). Every CUDA call is checked; a Device error makes the model refuse
// every later call with the same code (a sticky CUDA error poisons the context).
#include "cuda/backend.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <utility>
#include <vector>

#include "cpu/kernels.h"
#include "cpu/sampling.h"
#include "cuda/attention_flash.h"
#include "cuda/common.h"
#include "cuda/kernels.h"
#include "cuda/sampling.h"
#include "score/errors.h"
#include "score/rng.h"

namespace score::cuda {
namespace {

template <typename T>
void upload(T* dst, const T* src, size_t n, cudaStream_t s) {
  if (n) SCORE_CUDA_CHECK(cudaMemcpyAsync(dst, src, n * sizeof(T), cudaMemcpyHostToDevice, s));
}
template <typename T>
void download(T* dst, const T* src, size_t n, cudaStream_t s) {
  if (n) SCORE_CUDA_CHECK(cudaMemcpyAsync(dst, src, n * sizeof(T), cudaMemcpyDeviceToHost, s));
}

// The classifier processes at most this many logits per chunk (256 MiB of float):
// 1334 rows at V = 50257 (rows padded to 50304), 441 at V = 151936.
constexpr size_t kChunkFloats = size_t(64) << 20;

// A decode step captured as a CUDA graph (DecodeKind::Graph): run() captures the work fn
// enqueues on the stream the first time, then launches the capture. Everything fn's work
// reads or writes must stay where it was at the capture (the backend's buffers keep
// their pointers while the step's shapes stay the same); host copies stay outside.
class DecodeGraph {
 public:
  DecodeGraph() = default;
  DecodeGraph(const DecodeGraph&) = delete;
  DecodeGraph& operator=(const DecodeGraph&) = delete;
  ~DecodeGraph() {
    if (exec_) cudaGraphExecDestroy(exec_);
  }
  template <typename Fn>
  void run(cudaStream_t s, Fn&& fn) {
    if (!exec_) {
      SCORE_CUDA_CHECK(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal));
      cudaGraph_t g = nullptr;
      try {
        fn();
      } catch (...) {  // end the capture, so that the stream is usable again, and report
        cudaStreamEndCapture(s, &g);
        if (g) cudaGraphDestroy(g);
        throw;
      }
      SCORE_CUDA_CHECK(cudaStreamEndCapture(s, &g));
      const cudaError_t e = cudaGraphInstantiate(&exec_, g, 0);
      cudaGraphDestroy(g);
      SCORE_CUDA_CHECK(e);
    }
    SCORE_CUDA_CHECK(cudaGraphLaunch(exec_, s));
  }

 private:
  cudaGraphExec_t exec_ = nullptr;
};

class CudaBackend final : public Backend {
 public:
  CudaBackend(const ModelConfig& cfg, bool trainable, const Options& opt)
      : cfg_(cfg), layout_(cfg), trainable_(trainable), opt_(opt) {
    opt_.attention = resolve_attention(opt_.attention);
    opt_.sampling = resolve_sampling(opt_.sampling);
    opt_.decode = resolve_decode(opt_.decode);
    // Flash covers head sizes up to 128; larger heads keep the materialising kernel.
    flash_ = opt_.attention == AttentionKind::Flash && flash_attention_supported(cfg_.head_dim);
    SCORE_CUDA_CHECK(cudaSetDevice(opt_.device));
    SCORE_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    if (opt_.cublaslt && opt_.matmul == MatmulPrecision::BF16) lt_ = LtMatmul::create();
    params_.ensure(layout_.numel());
    SCORE_CUDA_CHECK(cudaMemsetAsync(params_.get(), 0, params_.bytes(), stream_));
    if (!cfg_.is_gpt2()) {
      const size_t half = static_cast<size_t>(cfg_.head_dim / 2), n = cfg_.max_pos * half;
      std::vector<float> c(n), s(n);
      cpu::rope_tables(c.data(), s.data(), cfg_.max_pos, cfg_.head_dim, cfg_.rope_theta);
      upload(rope_cos_.ensure(n), c.data(), n, stream_);
      upload(rope_sin_.ensure(n), s.data(), n, stream_);
    }
    sync();
  }
  ~CudaBackend() override {
    if (stream_) cudaStreamDestroy(stream_);
  }

  std::string name() const override { return "cuda"; }

  std::unique_ptr<Backend> clone(bool trainable) const override {
    return guarded([&] {
      auto copy = std::make_unique<CudaBackend>(cfg_, trainable, opt_);
      SCORE_CUDA_CHECK(cudaMemcpy(copy->params_.get(), params_.get(), params_.bytes(),
                                  cudaMemcpyDeviceToDevice));
      return std::unique_ptr<Backend>(std::move(copy));
    });
  }

  void set_params(const float* host) override {
    guarded([&] {
      upload(params_.get(), host, layout_.numel(), stream_);
      params16_stale_ = true;
      sync();
    });
  }
  void get_params(float* host) const override {
    guarded([&] {
      download(host, params_.get(), layout_.numel(), stream_);
      sync();
    });
  }

  void logprobs(const TokenBatch& batch, float* logp, float* entropy) override {
    guarded([&] {
      prepare(batch);
      const float* hidden = forward(batch.B, batch.T);
      classify(hidden, nullptr, nullptr, entropy != nullptr);
      std::vector<float> lp(ntarget_), ent(entropy ? ntarget_ : 0);
      download(lp.data(), row_logp_.get(), ntarget_, stream_);
      if (entropy) download(ent.data(), row_ent_.get(), ntarget_, stream_);
      sync();
      unpack(batch, lp, logp);
      if (entropy) unpack(batch, ent, entropy);
    });
  }

  LossStats loss_backward(const TokenBatch& batch, const TokenLoss& loss) override {
    return guarded([&] {
      SCORE_CHECK(trainable_, InvalidArgument, "this model is frozen (no gradients)");
      ensure_grads();
      const int B = batch.B, T = batch.T, N = B * T, C = cfg_.d_model;
      prepare(batch);
      // The per-token arrays (B, T-1) go to the device once per call, in one copy.
      const size_t S = static_cast<size_t>(B) * (T - 1);
      DeviceTokenLoss dl;
      dl.rl = loss.rl;
      dl.k3 = loss.kl == KlEstimator::K3;
      dl.clip_eps = loss.clip_eps;
      dl.inv_norm = 1.0 / loss.norm;
      const float* host[6] = {loss.weight, loss.w_pg, loss.adv, loss.w_kl, loss.ref_logp,
                              loss.old_logp};
      const float** dev[6] = {&dl.weight, &dl.w_pg, &dl.adv, &dl.w_kl, &dl.ref_logp, &dl.old_logp};
      float* arr = loss_arrays_.ensure(6 * std::max<size_t>(S, 1));
      std::vector<float> packed(loss.rl ? 6 * S : S, 0.0f);
      for (int k = 0; k < 6; k++) {
        if (!host[k] || (!loss.rl && k > 0)) continue;
        std::copy(host[k], host[k] + S, packed.begin() + k * S);
        *dev[k] = arr + k * S;
      }
      upload(arr, packed.data(), packed.size(), stream_);
      const float* hidden = forward(B, T);
      float* dhidden = dhidden_.ensure(static_cast<size_t>(N) * C);
      SCORE_CUDA_CHECK(cudaMemsetAsync(dhidden, 0, sizeof(float) * N * C, stream_));
      classify(hidden, &dl, dhidden, loss.rl);
      backward(dhidden);

      // Statistics: per-row terms back to the host, summed in double in row order.
      const size_t m = ntarget_;
      std::vector<double> stats(4 * m);  // (4, m): pg, kl, kl per token, clipped
      std::vector<float> ent(loss.rl ? m : 0);
      download(stats.data(), row_stats_.get(), 4 * m, stream_);
      if (loss.rl) download(ent.data(), row_ent_.get(), m, stream_);
      sync();
      const double *pg = stats.data(), *kl = pg + m, *klr = kl + m, *clip = klr + m;
      LossStats st;
      double pg_sum = 0, kl_sum = 0, kl_w = 0, clipped_w = 0, ent_w = 0;
      for (size_t r = 0; r < m; r++) {
        const double w = loss.weight[slot_[r]];
        st.tokens++;
        st.weight_sum += w;
        pg_sum += pg[r];
        kl_sum += kl[r];
        kl_w += klr[r];
        clipped_w += clip[r];
        if (loss.rl) ent_w += w * double(ent[r]);
      }
      st.pg_loss = pg_sum / loss.norm;
      st.kl_loss = kl_sum / loss.norm;
      st.loss = st.pg_loss + st.kl_loss;
      if (loss.rl && st.weight_sum > 0) {
        st.entropy_mean = ent_w / st.weight_sum;
        st.kl_mean = kl_w / st.weight_sum;
        st.clip_frac = clipped_w / st.weight_sum;
      }
      return st;
    });
  }

  StepStats optimizer_step(const AdamWConfig& opt) override {
    return guarded([&] {
      SCORE_CHECK(trainable_, InvalidArgument, "this model is frozen (no gradients)");
      const size_t n = layout_.numel();
      ensure_grads();
      if (!m_.get()) {
        m_.ensure(n);
        v_.ensure(n);
        SCORE_CUDA_CHECK(cudaMemsetAsync(m_.get(), 0, m_.bytes(), stream_));
        SCORE_CUDA_CHECK(cudaMemsetAsync(v_.get(), 0, v_.bytes(), stream_));
      }
      if (!adamw_chunks_.get()) {
        // The layout's chunks (one block each), made once: one launch updates every tensor.
        std::vector<AdamWTensor> ts;
        for (const TensorSpec& t : layout_.tensors()) ts.push_back({t.offset, t.numel, t.decay});
        const std::vector<AdamWChunk> chunks = adamw_chunks(ts);
        upload(adamw_chunks_.ensure(chunks.size()), chunks.data(), chunks.size(), stream_);
        n_adamw_chunks_ = static_cast<int>(chunks.size());
      }
      // The norm, the clipping and a poisoned step's skip all happen on the device (the
      // update reads the sum of squares), so the host waits once, at the end.
      double* d = norm_.ensure(1);
      SCORE_CUDA_CHECK(cudaMemsetAsync(d, 0, sizeof(double), stream_));
      sum_squares(d, grads_.get(), n, stream_);
      // The bf16 copy (once W16 has made one) is written by the update itself: every
      // tensor is updated, so afterwards it is current.
      uint16_t* p16 = params16_.get();
      const AdamWHyper h{opt.lr, opt.beta1, opt.beta2, opt.eps, opt.weight_decay,
                         opt.max_grad_norm, static_cast<int>(step_ + 1)};
      adamw_update(adamw_chunks_.get(), n_adamw_chunks_, params_.get(), grads_.get(), m_.get(),
                   v_.get(), p16, d, h, stream_);
      zero_grads_async();
      double ss = 0;
      download(&ss, d, 1, stream_);
      sync();
      StepStats st;
      st.grad_norm = std::sqrt(ss);
      if (!std::isfinite(st.grad_norm)) {
        // A poisoned step: the update wrote nothing, the gradients are dropped (as on the CPU).
        st.skipped = true;
        st.step = step_;
        return st;
      }
      if (opt.max_grad_norm > 0 && st.grad_norm > opt.max_grad_norm)
        st.clip_scale = opt.max_grad_norm / (st.grad_norm + 1e-6);
      step_++;
      params16_stale_ = p16 == nullptr;
      st.step = step_;
      return st;
    });
  }

  void zero_grad() override {
    guarded([&] {
      zero_grads_async();
      sync();
    });
  }

  int64_t get_optimizer_state(float* m, float* v) const override {
    return guarded([&] {
      SCORE_CHECK(trainable_, InvalidArgument, "this model is frozen (no optimizer state)");
      const size_t n = layout_.numel();
      if (!m_.get()) {
        std::fill(m, m + n, 0.0f);
        std::fill(v, v + n, 0.0f);
      } else {
        download(m, m_.get(), n, stream_);
        download(v, v_.get(), n, stream_);
        sync();
      }
      return step_;
    });
  }

  void set_optimizer_state(const float* m, const float* v, int64_t step) override {
    guarded([&] {
      SCORE_CHECK(trainable_, InvalidArgument, "this model is frozen (no optimizer state)");
      const size_t n = layout_.numel();
      upload(m_.ensure(n), m, n, stream_);
      upload(v_.ensure(n), v, n, stream_);
      sync();
      step_ = step;
    });
  }

  GenerateResult generate(const GenerateRequest& req) override {
    return guarded([&] {
      GenerateResult r = generate_impl(req);
      // The KV cache and decode scratch are freed after each call: a policy that samples
      // and then trains holds either the cache or the training activations, not both.
      kv_.release();
      dec_.release();
      dec16_.release();
      return r;
    });
  }

  MemoryUse memory_use() const override {
    MemoryUse u;
    u.params = params_.bytes() + params16_.bytes();  // with the bf16 copy (bf16 precision)
    u.grads = grads_.bytes();
    u.optimizer = m_.bytes() + v_.bytes();
    u.activations = acts_.bytes() + acts16_.bytes();
    u.scratch = dhidden_.bytes() + logits_.bytes() + chunk_h_.bytes() + cls16_.bytes() +
                chunk_dh_.bytes() + kv_.bytes() + dec_.bytes() + dec16_.bytes();
    return u;
  }

 private:
  // ---- error discipline ----
  template <typename Fn>
  auto guarded(Fn&& fn) const -> decltype(fn()) {
    SCORE_CHECK(broken_.empty(), Device,
                "the CUDA device failed earlier in this model and it refuses further calls (" +
                    broken_ + ")");
    try {
      // The current device is per host thread, and calls arrive on worker threads.
      SCORE_CUDA_CHECK(cudaSetDevice(opt_.device));
      return fn();
    } catch (const Error& e) {
      if (e.code() == ErrorCode::Device) broken_ = e.what();
      throw;
    }
  }
  void sync() const { SCORE_CUDA_CHECK(cudaStreamSynchronize(stream_)); }

  void ensure_grads() {
    if (grads_.get()) return;
    grads_.ensure(layout_.numel());
    zero_grads_async();
  }
  void zero_grads_async() {
    if (grads_.get()) SCORE_CUDA_CHECK(cudaMemsetAsync(grads_.get(), 0, grads_.bytes(), stream_));
  }
  const float* P(size_t off) const { return off == ParamLayout::kNone ? nullptr : params_.get() + off; }
  // The bf16 copy of a weight, the operand of the products in bf16 precision (null in
  // float32 precision). The whole copy is converted on first use after construction or
  // set_params (2 bytes a parameter); AdamW keeps it current after every step.
  const uint16_t* W16(size_t off) {
    if (!bf16() || off == ParamLayout::kNone) return nullptr;
    if (params16_stale_) {
      const int64_t n = static_cast<int64_t>(layout_.numel());
      to_bf16(params16_.ensure(layout_.numel()), params_.get(), 1, n, n, stream_);
      params16_stale_ = false;
    }
    return params16_.get() + off;
  }
  float* G(size_t off) { return off == ParamLayout::kNone ? nullptr : grads_.get() + off; }

  // ---- batch preparation: positions, and the rows that have a target ----
  void prepare(const TokenBatch& b) {
    const int N = b.B * b.T;
    // Built on the host and uploaded in one copy: tokens and positions (N each), then per
    // target row its row index, target token and output slot (ntarget_ each).
    std::vector<int32_t> rows, target;
    slot_.clear();
    for (int r = 0; r < b.B; r++)
      for (int t = 0; t < b.T && t + 1 < b.lengths[r]; t++) {
        rows.push_back(r * b.T + t);
        target.push_back(b.tokens[r * b.T + t + 1]);
        slot_.push_back(r * (b.T - 1) + t);
      }
    ntarget_ = rows.size();
    std::vector<int32_t> host(b.tokens, b.tokens + N);
    for (int r = 0; r < b.B; r++)
      for (int t = 0; t < b.T; t++) host.push_back(t);
    host.insert(host.end(), rows.begin(), rows.end());
    host.insert(host.end(), target.begin(), target.end());
    host.insert(host.end(), slot_.begin(), slot_.end());
    int32_t* ints = ints_.ensure(std::max<size_t>(host.size(), 1));
    upload(ints, host.data(), host.size(), stream_);
    d_tokens_ = ints;
    d_pos_ = ints + N;
    d_rows_ = ints + 2 * N;
    d_target_ = d_rows_ + ntarget_;
    d_slot_ = d_target_ + ntarget_;
    const size_t m = std::max<size_t>(ntarget_, 1);
    row_logp_.ensure(m);
    row_ent_.ensure(m);
    row_stats_.ensure(4 * m);
  }
  void unpack(const TokenBatch& b, const std::vector<float>& vals, float* out) const {
    std::fill(out, out + static_cast<size_t>(b.B) * (b.T - 1), 0.0f);
    for (size_t r = 0; r < ntarget_; r++) out[slot_[r]] = vals[r];
  }

  // ---- activations: one arena, carved per (B, T) ----
  // In bf16 precision the products' inputs are bf16 in memory, written by their producers
  // (LayerActs16): the float32 ln1, ln2 and act are then never read, and are not kept
  // (null); the float32 atty stays (flash backward reads it for delta).
  struct LayerActs {
    float *x, *ln1, *ln1_mean, *ln1_rstd, *qkv, *att, *atty, *xmid, *ln2, *ln2_mean, *ln2_rstd, *h,
        *act;
  };
  struct LayerActs16 {
    uint16_t *ln1 = nullptr, *atty = nullptr, *ln2 = nullptr, *act = nullptr;
  };
  // Backward's bf16 copies of the output gradients that are a product's dout: the residual
  // stream's (from the norms' backward), the MLP's hidden (from GELU / SwiGLU backward),
  // and qkv's (converted: attention backward adds dQ with atomics).
  struct Grads16 {
    uint16_t *res = nullptr, *h = nullptr, *qkv = nullptr;
  };
  bool bf16() const { return opt_.matmul == MatmulPrecision::BF16; }
  void carve(int B, int T) {
    const size_t N = static_cast<size_t>(B) * T, C = cfg_.d_model, QKV = cfg_.qkv_dim();
    const size_t Q = cfg_.q_dim(), Fd = cfg_.d_ff, Hf = cfg_.is_gpt2() ? Fd : 2 * Fd;
    // Per layer: the (B, H, T, T) probabilities, or with flash the (B, H, T) row
    // log-sum-exps; backward scratch of the same size (dscores, or flash's delta).
    const size_t natt = static_cast<size_t>(B) * cfg_.n_head * T * (flash_ ? 1 : T);
    const bool bwd = trainable_, b16 = bf16();
    // Offsets in floats, each rounded to 64 floats (256 bytes) for aligned kernels.
    size_t off = 0;
    auto take = [&](size_t n) {
      const size_t at = off;
      off += (n + 63) / 64 * 64;
      return at;
    };
    std::vector<size_t> lo(cfg_.n_layer * 13);
    for (int l = 0; l < cfg_.n_layer; l++) {
      const size_t f32 = b16 ? 0 : 1;  // ln1, ln2, act: only in float32 precision
      const size_t sizes[13] = {N * C, f32 * N * C, N, N, N * QKV, natt, N * Q, N * C, f32 * N * C, N, N, N * Hf, f32 * N * Fd};
      for (int k = 0; k < 13; k++) lo[l * 13 + k] = take(sizes[k]);
    }
    const size_t o_xfinal = take(N * C), o_lnf = take(N * C), o_lnf_mean = take(N),
                 o_lnf_rstd = take(N);
    size_t o_dres = 0, o_dln = 0, o_dqkv = 0, o_datty = 0, o_dh = 0, o_dact = 0, o_datt = 0;
    if (bwd) {
      o_dres = take(N * C), o_dln = take(N * C), o_dqkv = take(N * QKV), o_datty = take(N * Q);
      o_dh = take(b16 ? 0 : N * Hf), o_dact = take(N * Fd), o_datt = take(natt);  // dh: bf16 only
    }
    float* base = acts_.ensure(off);
    layers_.resize(cfg_.n_layer);
    for (int l = 0; l < cfg_.n_layer; l++) {
      float** f = reinterpret_cast<float**>(&layers_[l]);
      for (int k = 0; k < 13; k++) f[k] = base + lo[l * 13 + k];
      if (b16) layers_[l].ln1 = layers_[l].ln2 = layers_[l].act = nullptr;
    }
    xfinal_ = base + o_xfinal, lnf_ = base + o_lnf, lnf_mean_ = base + o_lnf_mean,
    lnf_rstd_ = base + o_lnf_rstd;
    if (bwd) {
      dres_ = base + o_dres, dln_ = base + o_dln, dqkv_ = base + o_dqkv, datty_ = base + o_datty;
      dh_ = b16 ? nullptr : base + o_dh, dact_ = base + o_dact, datt_ = base + o_datt;
    }
    // bf16: per layer when backward needs them, else one set that every layer reuses.
    layers16_.assign(cfg_.n_layer, LayerActs16{});
    grads16_ = Grads16{};
    if (!b16) return;
    auto round = [](size_t n) { return (n + 127) / 128 * 128; };  // 256 bytes
    const size_t set = 2 * round(N * C) + round(N * Q) + round(N * Fd);
    const size_t sets = bwd ? cfg_.n_layer : 1;
    const size_t grads = bwd ? round(N * C) + round(N * Hf) + round(N * QKV) : 0;
    uint16_t* p = acts16_.ensure(sets * set + grads);
    for (size_t k = 0; k < sets; k++, p += set)
      layers16_[k] = {p, p + round(N * C), p + round(N * C) + round(N * Q), p + 2 * round(N * C) + round(N * Q)};
    for (int l = static_cast<int>(sets); l < cfg_.n_layer; l++) layers16_[l] = layers16_[0];
    if (bwd) grads16_ = {p, p + round(N * C), p + round(N * C) + round(N * Hf)};
  }

  // out = the model's norm (LayerNorm for GPT-2, RMSNorm otherwise; mean unused by the
  // latter) of x with weight w (and bias b), after x += residual where given: the residual
  // stream's add done in the norm's pass. out / out16 as layernorm_forward.
  void norm(float* out, uint16_t* out16, float* mean, float* rstd, float* x, const float* residual,
            size_t w, size_t b, int N) {
    const int C = cfg_.d_model;
    if (cfg_.is_gpt2())
      layernorm_forward(out, mean, rstd, x, P(w), P(b), N, C, cfg_.norm_eps, stream_, out16, residual);
    else
      rmsnorm_forward(out, rstd, x, P(w), N, C, cfg_.norm_eps, stream_, out16, residual);
  }

  // Each residual add is done by the norm that reads its sum: layer l's attention output
  // gets x added by ln2, its MLP output gets xmid added by the next layer's ln1 (or lnf).
  const float* forward(int B, int T) {
    carve(B, T);
    B_ = B, T_ = T;
    const int N = B * T, C = cfg_.d_model, QKV = cfg_.qkv_dim(), Q = cfg_.q_dim(), Fd = cfg_.d_ff;
    const int H = cfg_.n_head, KVH = cfg_.n_kv_head, hd = cfg_.head_dim;
    const bool gpt2 = cfg_.is_gpt2();
    const auto pr = opt_.matmul;
    cudaStream_t s = stream_;
    embedding_forward(layers_[0].x, d_tokens_, d_pos_, P(layout_.wte), P(layout_.wpe), N, C, s);
    const float* residual = nullptr;  // to add into this layer's x: the last layer's xmid
    for (int l = 0; l < cfg_.n_layer; l++) {
      const LayerOffsets& o = layout_.layers[l];
      LayerActs& a = layers_[l];
      const LayerActs16& a16 = layers16_[l];
      float* xout = l + 1 < cfg_.n_layer ? layers_[l + 1].x : xfinal_;
      norm(a.ln1, a16.ln1, a.ln1_mean, a.ln1_rstd, a.x, residual, o.ln1_w, o.ln1_b, N);
      matmul_forward(a.qkv, a.ln1, P(o.qkv_w), P(o.qkv_b), N, C, QKV, pr, s,
                     lt_.get(), 0, W16(o.qkv_w), a16.ln1);
      if (!gpt2) rope_forward(a.qkv, d_pos_, rope_cos_.get(), rope_sin_.get(), N, QKV, H, KVH, hd, s);
      if (flash_) {
        flash_attention_forward(a.atty, a.att, a.qkv, B, T, H, KVH, hd, pr, s, a16.atty);
      } else {
        attention_forward(a.atty, a.att, a.qkv, B, T, H, KVH, hd, pr, s);
        if (a16.atty) to_bf16(a16.atty, a.atty, N, Q, Q, s);
      }
      matmul_forward(a.xmid, a.atty, P(o.attn_o_w), P(o.attn_o_b), N, Q, C, pr, s,
                     lt_.get(), 0, W16(o.attn_o_w), a16.atty);
      norm(a.ln2, a16.ln2, a.ln2_mean, a.ln2_rstd, a.xmid, a.x, o.ln2_w, o.ln2_b, N);
      if (gpt2) {
        matmul_forward(a.h, a.ln2, P(o.fc_w), P(o.fc_b), N, C, Fd, pr, s,
                       lt_.get(), 0, W16(o.fc_w), a16.ln2);
        gelu_forward(a.act, a.h, static_cast<size_t>(N) * Fd, s, a16.act);
        matmul_forward(xout, a.act, P(o.proj_w), P(o.proj_b), N, Fd, C, pr, s,
                       lt_.get(), 0, W16(o.proj_w), a16.act);
      } else {
        matmul_forward(a.h, a.ln2, P(o.gate_up_w), nullptr, N, C, 2 * Fd, pr, s,
                       lt_.get(), 0, W16(o.gate_up_w), a16.ln2);
        swiglu_forward(a.act, a.h, N, Fd, s, a16.act);
        matmul_forward(xout, a.act, P(o.down_w), nullptr, N, Fd, C, pr, s,
                       lt_.get(), 0, W16(o.down_w), a16.act);
      }
      residual = a.xmid;
    }
    norm(lnf_, nullptr, lnf_mean_, lnf_rstd_, xfinal_, residual, layout_.lnf_w, layout_.lnf_b, N);
    return lnf_;
  }

  void backward(const float* dhidden) {
    const int B = B_, T = T_, N = B * T, C = cfg_.d_model, QKV = cfg_.qkv_dim(), Q = cfg_.q_dim();
    const int Fd = cfg_.d_ff, H = cfg_.n_head, KVH = cfg_.n_kv_head, hd = cfg_.head_dim;
    const bool gpt2 = cfg_.is_gpt2();
    const auto pr = opt_.matmul;
    cudaStream_t s = stream_;
    auto zero = [&](float* p, size_t n) {
      SCORE_CUDA_CHECK(cudaMemsetAsync(p, 0, n * sizeof(float), s));
    };
    const size_t NC = static_cast<size_t>(N) * C;
    const Grads16& g16 = grads16_;
    zero(dres_, NC);
    if (gpt2)
      layernorm_backward(dres_, G(layout_.lnf_w), G(layout_.lnf_b), dhidden, xfinal_,
                         P(layout_.lnf_w), lnf_mean_, lnf_rstd_, N, C, s, g16.res);
    else
      rmsnorm_backward(dres_, G(layout_.lnf_w), dhidden, xfinal_, P(layout_.lnf_w), lnf_rstd_, N,
                       C, s, g16.res);
    for (int l = cfg_.n_layer - 1; l >= 0; l--) {
      const LayerOffsets& o = layout_.layers[l];
      LayerActs& a = layers_[l];
      const LayerActs16& a16 = layers16_[l];
      // dact_, dln_ and datty_ are overwritten by their products (dinp_overwrite), dh by
      // GELU / SwiGLU backward, dqkv_ by flash backward; the materialising attention
      // backward adds into dqkv_, zeroed first. g16.res is the bf16 copy of dres_ as the
      // last norm backward left it. With its bf16 copy g16.h nothing reads a float32 dh
      // (GELU backward sums fc's bias gradient itself), so none is kept (dh_ null).
      float* dh = g16.h ? nullptr : dh_;
      if (gpt2) {
        matmul_backward(dact_, G(o.proj_w), G(o.proj_b), dres_, a.act, P(o.proj_w), N, Fd, C, pr, s,
                        lt_.get(), 0, W16(o.proj_w), a16.act, true, g16.res);
        gelu_backward(dh, a.h, dact_, N, Fd, s, g16.h, G(o.fc_b));
        matmul_backward(dln_, G(o.fc_w), nullptr, dh, a.ln2, P(o.fc_w), N, C, Fd, pr, s,
                        lt_.get(), 0, W16(o.fc_w), a16.ln2, true, g16.h);
        layernorm_backward(dres_, G(o.ln2_w), G(o.ln2_b), dln_, a.xmid, P(o.ln2_w), a.ln2_mean,
                           a.ln2_rstd, N, C, s, g16.res);
      } else {
        matmul_backward(dact_, G(o.down_w), nullptr, dres_, a.act, P(o.down_w), N, Fd, C, pr, s,
                        lt_.get(), 0, W16(o.down_w), a16.act, true, g16.res);
        swiglu_backward(dh, a.h, dact_, N, Fd, s, g16.h);
        matmul_backward(dln_, G(o.gate_up_w), nullptr, dh, a.ln2, P(o.gate_up_w), N, C, 2 * Fd,
                        pr, s, lt_.get(), 0, W16(o.gate_up_w), a16.ln2, true, g16.h);
        rmsnorm_backward(dres_, G(o.ln2_w), dln_, a.xmid, P(o.ln2_w), a.ln2_rstd, N, C, s, g16.res);
      }
      if (!flash_) zero(dqkv_, static_cast<size_t>(N) * QKV);  // flash backward overwrites it
      matmul_backward(datty_, G(o.attn_o_w), G(o.attn_o_b), dres_, a.atty, P(o.attn_o_w), N, Q, C,
                      pr, s, lt_.get(), 0, W16(o.attn_o_w), a16.atty, true, g16.res);
      if (flash_)  // a.att holds lse; a.atty (the forward's output) gives delta
        flash_attention_backward(dqkv_, datt_, datty_, a.qkv, a.atty, a.att, B, T, H, KVH, hd, pr, s);
      else
        attention_backward(dqkv_, datt_, datty_, a.qkv, a.att, B, T, H, KVH, hd, pr, s);
      if (!gpt2)
        rope_backward(dqkv_, d_pos_, rope_cos_.get(), rope_sin_.get(), N, QKV, H, KVH, hd, s);
      // The qkv gradient's bf16 copy, with its bias gradient summed in the same pass.
      if (g16.qkv) to_bf16(g16.qkv, dqkv_, N, QKV, QKV, s, G(o.qkv_b));
      matmul_backward(dln_, G(o.qkv_w), g16.qkv ? nullptr : G(o.qkv_b), dqkv_, a.ln1, P(o.qkv_w), N, C,
                      QKV, pr, s, lt_.get(), 0, W16(o.qkv_w), a16.ln1, true, g16.qkv);
      // The residual gradient below layer 0 goes to the embeddings (float32) only.
      uint16_t* res16 = l > 0 ? g16.res : nullptr;
      if (gpt2)
        layernorm_backward(dres_, G(o.ln1_w), G(o.ln1_b), dln_, a.x, P(o.ln1_w), a.ln1_mean,
                           a.ln1_rstd, N, C, s, res16);
      else
        rmsnorm_backward(dres_, G(o.ln1_w), dln_, a.x, P(o.ln1_w), a.ln1_rstd, N, C, s, res16);
    }
    embedding_backward(G(layout_.wte), G(layout_.wpe), dres_, d_tokens_, d_pos_, N, C, s);
  }

  // The fused classifier over the target rows of the last prepare(): chunks of rows are
  // gathered, their logits computed, reduced per row (and with a loss turned into dlogits
  // in place), and backpropagated into dhidden and the lm_head gradient.
  void classify(const float* hidden, const DeviceTokenLoss* loss, float* dhidden, bool entropy) {
    const int C = cfg_.d_model, V = cfg_.vocab_size;
    const size_t total = ntarget_;
    if (total == 0) return;
    // Logit rows padded to a multiple of 64 floats: with V = 50257 (odd) no row after the
    // first would start 16-byte aligned, which keeps cuBLASLt (and our kernel's vector
    // loads) off their fast paths in all three lm_head products. The padding is never
    // read: the products and the row kernel stop at column V.
    const int ld = (V + 63) / 64 * 64;
    const int chunk = static_cast<int>(std::min<size_t>(total, std::max<size_t>(64, kChunkFloats / ld)));
    float* logits = logits_.ensure(static_cast<size_t>(chunk) * ld);
    float* dh = loss ? chunk_dh_.ensure(static_cast<size_t>(chunk) * C) : nullptr;
    const float* wlm = P(layout_.lm_head_w);
    const uint16_t* wlm16 = W16(layout_.lm_head_w);
    // bf16 precision: the chunk's hidden rows are gathered into bf16 (the operand of the
    // logits product and of dW_lm), and the classifier writes dlogits in bf16 only (the
    // operand of dh and dW_lm). float32 precision: both in float32.
    uint16_t *h16 = nullptr, *dl16 = nullptr;
    float* h = nullptr;
    if (bf16()) {
      const size_t hn = (static_cast<size_t>(chunk) * C + 127) / 128 * 128;
      h16 = cls16_.ensure(hn + (loss ? static_cast<size_t>(chunk) * ld : 0));
      if (loss) dl16 = h16 + hn;
    } else {
      h = chunk_h_.ensure(static_cast<size_t>(chunk) * C);
    }
    for (size_t r0 = 0; r0 < total; r0 += chunk) {
      const int m = static_cast<int>(std::min<size_t>(chunk, total - r0));
      if (h16)
        gather_rows(h16, hidden, d_rows_ + r0, m, C, stream_);
      else
        gather_rows(h, hidden, d_rows_ + r0, m, C, stream_);
      matmul_forward(logits, h, wlm, nullptr, m, C, V, opt_.matmul, stream_, lt_.get(), ld, wlm16, h16);
      ClassifierRowOut out;
      out.logp = row_logp_.get() + r0;
      out.entropy = entropy ? row_ent_.get() + r0 : nullptr;
      if (loss) {
        out.pg = row_stats_.get() + r0;
        out.kl = row_stats_.get() + total + r0;
        out.kl_raw = row_stats_.get() + 2 * total + r0;
        out.clipped = row_stats_.get() + 3 * total + r0;
        out.dlogits16 = dl16;
      }
      classifier_rows(logits, ld, d_target_ + r0, d_slot_ + r0, m, V, loss, out, stream_);
      if (!loss) continue;
      // dh (m, C) = dlogits @ wlm;  dwlm (V, C) += dlogits^T @ h
      matmul_backward(dh, G(layout_.lm_head_w), nullptr, logits, h, wlm, m, C, V, opt_.matmul,
                      stream_, lt_.get(), ld, wlm16, h16, true, dl16);
      scatter_add_rows(dhidden, dh, d_rows_ + r0, m, C, stream_);
    }
  }

  // ---- generation (mirrors cpu::generate) ----
  struct Decode {
    float *x, *ln, *mean, *rstd, *qkv, *atty, *xmid, *h, *act;
  };
  // Rows r = 0..n-1: token tok[r] of cache slot slot[r] at position pos[r] (device arrays).
  const float* forward_cached(const int32_t* tok, const int32_t* pos, const int32_t* slot, int n,
                              int len) {
    const int C = cfg_.d_model, QKV = cfg_.qkv_dim(), Q = cfg_.q_dim(), Fd = cfg_.d_ff;
    const int H = cfg_.n_head, KVH = cfg_.n_kv_head, hd = cfg_.head_dim;
    const bool gpt2 = cfg_.is_gpt2();
    const auto pr = opt_.matmul;
    cudaStream_t s = stream_;
    const size_t N = n, Hf = gpt2 ? Fd : 2 * Fd;
    const size_t f32 = bf16() ? 0 : 1;  // atty, act: in bf16 precision only their bf16 copies
    const size_t sizes[9] = {N * C, N * C, N, N, N * QKV, f32 * N * Q, N * C, N * Hf, f32 * N * Fd};
    size_t total = 0;
    for (size_t z : sizes) total += (z + 63) / 64 * 64;
    float* base = dec_.ensure(total);
    Decode d;
    float** f = reinterpret_cast<float**>(&d);
    for (int k = 0; k < 9; k++) {
      f[k] = base;
      base += (sizes[k] + 63) / 64 * 64;
    }
    // bf16 precision: the norms, the attention and the MLP activation write only the bf16
    // copies that the products read (as in forward()); the final norm's output stays
    // float32.
    uint16_t *ln16 = nullptr, *atty16 = nullptr, *act16 = nullptr;
    if (bf16()) {
      const size_t nc = (N * C + 127) / 128 * 128, nq = (N * Q + 127) / 128 * 128;
      ln16 = dec16_.ensure(nc + nq + N * Fd);
      atty16 = ln16 + nc;
      act16 = atty16 + nq;
    }
    float* ln = ln16 ? nullptr : d.ln;  // d.ln itself stays: the final norm's output
    float* atty = atty16 ? nullptr : d.atty;
    float* act = act16 ? nullptr : d.act;
    const size_t per_layer = static_cast<size_t>(kv_slots_) * KVH * len * hd;
    embedding_forward(d.x, tok, pos, P(layout_.wte), P(layout_.wpe), n, C, s);
    // The residual adds as in forward(): d.x += d.xmid in the next ln1 (or lnf).
    for (int l = 0; l < cfg_.n_layer; l++) {
      const LayerOffsets& o = layout_.layers[l];
      norm(ln, ln16, d.mean, d.rstd, d.x, l > 0 ? d.xmid : nullptr, o.ln1_w, o.ln1_b, n);
      matmul_forward(d.qkv, ln, P(o.qkv_w), P(o.qkv_b), n, C, QKV, pr, s,
                     lt_.get(), 0, W16(o.qkv_w), ln16);
      if (!gpt2) rope_forward(d.qkv, pos, rope_cos_.get(), rope_sin_.get(), n, QKV, H, KVH, hd, s);
      // This layer's k and v caches (float32, or bf16 in bf16 precision).
      auto attend = [&](auto* cache) {
        auto* kc = cache + 2 * l * per_layer;
        auto* vc = kc + per_layer;
        kv_store(kc, vc, d.qkv, slot, pos, n, QKV, H, KVH, hd, len, s);
        attention_cached_forward(atty, d.qkv, kc, vc, slot, pos, n, QKV, H, KVH, hd, len, s, atty16);
      };
      if (bf16())
        attend(reinterpret_cast<uint16_t*>(kv_.get()));
      else
        attend(reinterpret_cast<float*>(kv_.get()));
      matmul_forward(d.xmid, atty, P(o.attn_o_w), P(o.attn_o_b), n, Q, C, pr, s,
                     lt_.get(), 0, W16(o.attn_o_w), atty16);
      norm(ln, ln16, d.mean, d.rstd, d.xmid, d.x, o.ln2_w, o.ln2_b, n);
      if (gpt2) {
        matmul_forward(d.h, ln, P(o.fc_w), P(o.fc_b), n, C, Fd, pr, s, lt_.get(), 0, W16(o.fc_w), ln16);
        gelu_forward(act, d.h, N * Fd, s, act16);
        matmul_forward(d.x, act, P(o.proj_w), P(o.proj_b), n, Fd, C, pr, s,
                       lt_.get(), 0, W16(o.proj_w), act16);
      } else {
        matmul_forward(d.h, ln, P(o.gate_up_w), nullptr, n, C, 2 * Fd, pr, s,
                       lt_.get(), 0, W16(o.gate_up_w), ln16);
        swiglu_forward(act, d.h, n, Fd, s, act16);
        matmul_forward(d.x, act, P(o.down_w), nullptr, n, Fd, C, pr, s,
                       lt_.get(), 0, W16(o.down_w), act16);
      }
    }
    norm(d.ln, nullptr, d.mean, d.rstd, d.x, cfg_.n_layer > 0 ? d.xmid : nullptr, layout_.lnf_w,
         layout_.lnf_b, n);
    return d.ln;
  }

  GenerateResult generate_impl(const GenerateRequest& req) {
    const int NP = static_cast<int>(req.prompts.size()), n = req.n, S = NP * n;
    const int V = cfg_.vocab_size, C = cfg_.d_model, KVH = cfg_.n_kv_head, hd = cfg_.head_dim;
    int longest = 0;
    for (const auto& p : req.prompts) longest = std::max(longest, static_cast<int>(p.size()));
    const int len = std::min(cfg_.max_pos, longest + req.max_new_tokens);
    GenerateResult res;
    const size_t esz = kv_elem();
    res.kv_cache_bytes = 2 * esz * static_cast<size_t>(cfg_.n_layer) * S * KVH * len * hd;
    SCORE_CHECK(req.memory_budget == 0 || res.kv_cache_bytes <= req.memory_budget, OutOfMemory,
                "generate: the KV cache for " + std::to_string(S) + " sequences of " +
                    std::to_string(len) + " positions needs " +
                    std::to_string(res.kv_cache_bytes >> 20) + " MiB, over the memory budget of " +
                    std::to_string(req.memory_budget >> 20) + " MiB");
    kv_slots_ = S;
    kv_.ensure(res.kv_cache_bytes);
    res.tokens.assign(S, {});
    res.logp.assign(S, {});
    res.logp_sampling.assign(S, {});
    res.finish.assign(S, FinishReason::Length);

    cpu::SamplingParams sp;
    sp.temperature = req.temperature;
    sp.top_k = req.top_k;
    sp.top_p = req.top_p;
    cpu::validate_sampling(sp);
    const bool greedy = req.temperature == 0;
    const DeviceSamplingParams dsp =
        greedy ? DeviceSamplingParams{} : device_sampling_params(req.temperature, req.top_k, req.top_p);
    std::vector<Rng> rngs;
    rngs.reserve(S);
    for (int r = 0; r < S; r++)
      rngs.emplace_back(req.seed * 0x9e3779b97f4a7c15ull + static_cast<uint64_t>(r));
    std::vector<cpu::SampleScratch> scratch(static_cast<size_t>(omp_get_max_threads()));

    std::vector<int32_t> tok, pos, slot, pick;  // this step's rows; rows whose hidden is sampled
    std::vector<int> row_seq;
    std::vector<float> host_logits;
    std::vector<int32_t> gtok;
    std::vector<float> glogp;

    // Device staging of the step's int arrays: tok, pos, slot (n rows), pick (S rows), out token.
    auto stage = [&](size_t rows) {
      int32_t* base = gen_ints_.ensure(3 * rows + 2 * static_cast<size_t>(S) + 8);
      upload(base, tok.data(), rows, stream_);
      upload(base + rows, pos.data(), rows, stream_);
      upload(base + 2 * rows, slot.data(), rows, stream_);
      return base;
    };
    // Sampling `rows` rows of a hidden buffer (row i is hidden row pick[i], of sequence
    // row_seq[i]; -1: a stand-in row of a finished sequence, whose result is dropped), in
    // three parts so that the device part can be a graph: the uploads (picks, and for the
    // device sampler the uniforms: one per row from its sequence's stream, in row order,
    // as cpu::sample_row would draw them), the device work (gather, lm_head, the greedy or
    // sampling kernel, into buffers that stay put while rows stays the same), and the
    // results (downloads, checks, the host sampler, appending to res).
    int32_t* d_pick = nullptr;
    float* logits = nullptr;
    auto sample_upload = [&](int rows) {
      d_pick = gen_ints_.get() + gen_ints_.size() - 2 * S - 8;
      upload(d_pick, pick.data(), rows, stream_);
      logits = logits_.ensure(static_cast<size_t>(rows) * V);
      if (greedy || opt_.sampling != SamplingKind::Device) return;
      std::vector<double> u(rows, 0.5);
      for (int i = 0; i < rows; i++)
        if (row_seq[i] >= 0) u[i] = rngs[row_seq[i]].uniform();
      upload(samp_u_.ensure(rows), u.data(), rows, stream_);
    };
    auto sample_device = [&](const float* hidden, int rows) {
      // The sampled rows' hidden states, gathered into the lm_head's operand type.
      float* h = nullptr;
      uint16_t* h16 = nullptr;
      if (bf16())
        gather_rows(h16 = cls16_.ensure(static_cast<size_t>(rows) * C), hidden, d_pick, rows, C, stream_);
      else
        gather_rows(h = chunk_h_.ensure(static_cast<size_t>(rows) * C), hidden, d_pick, rows, C, stream_);
      matmul_forward(logits, h, P(layout_.lm_head_w), nullptr, rows, C, V, opt_.matmul, stream_, lt_.get(), 0,
                     W16(layout_.lm_head_w), h16);
      if (greedy) {
        greedy_rows(d_pick + S, row_logp_.ensure(rows), logits, rows, V, stream_);
      } else if (opt_.sampling == SamplingKind::Device) {
        int32_t* ti = samp_i_.ensure(2 * static_cast<size_t>(rows));  // token, status
        float* lf = samp_f_.ensure(2 * static_cast<size_t>(rows));    // logp, logp_sampling
        score::cuda::sample_rows(ti, lf, lf + rows, ti + rows, logits, samp_u_.get(), rows, V, dsp, stream_);
      }
    };
    auto sample_results = [&](int rows) {
      std::vector<cpu::SampleResult> out(rows);
      if (greedy) {
        gtok.resize(rows);
        glogp.resize(rows);
        download(gtok.data(), d_pick + S, rows, stream_);
        download(glogp.data(), row_logp_.get(), rows, stream_);
        sync();
        for (int i = 0; i < rows; i++) {
          SCORE_CHECK(row_seq[i] < 0 || std::isfinite(glogp[i]), Numeric,  // as cpu::sample_row
                      "generate: sequence " + std::to_string(row_seq[i]) +
                          ": logits are not finite (NaN or infinite): the model has diverged");
          out[i] = {gtok[i], glogp[i], 0.0f};
        }
      } else if (opt_.sampling == SamplingKind::Device) {
        std::vector<int32_t> ti(2 * static_cast<size_t>(rows));
        std::vector<float> lf(2 * static_cast<size_t>(rows));
        download(ti.data(), samp_i_.get(), ti.size(), stream_);
        download(lf.data(), samp_f_.get(), lf.size(), stream_);
        sync();
        for (int i = 0; i < rows; i++) {
          SCORE_CHECK(row_seq[i] < 0 || ti[rows + i] == kSampleOk, Numeric,  // as cpu::sample_row's errors
                      "generate: sequence " + std::to_string(row_seq[i]) + ": " +
                          sample_status_message(ti[rows + i]));
          out[i] = {ti[i], lf[i], lf[rows + i]};
        }
      } else {
        host_logits.resize(static_cast<size_t>(rows) * V);
        download(host_logits.data(), logits, host_logits.size(), stream_);
        sync();
        // As in cpu::generate: no exception may leave the OpenMP region; the first
        // error is rethrown with its code.
        std::vector<std::string> errors(rows);
        std::vector<ErrorCode> codes(rows, ErrorCode::Internal);
#pragma omp parallel for schedule(static)
        for (int i = 0; i < rows; i++) {
          if (row_seq[i] < 0) continue;
          try {
            out[i] = cpu::sample_row(host_logits.data() + static_cast<size_t>(i) * V, V, sp,
                                     rngs[row_seq[i]], scratch[omp_get_thread_num()]);
          } catch (const Error& e) {
            errors[i] = e.what();
            codes[i] = e.code();
          } catch (const std::exception& e) {
            errors[i] = e.what();
          }
        }
        for (int i = 0; i < rows; i++)
          if (!errors[i].empty())
            throw Error(codes[i], "generate: sequence " + std::to_string(row_seq[i]) + ": " + errors[i]);
      }
      for (int i = 0; i < rows; i++) {
        const int r = row_seq[i];
        if (r < 0) continue;
        res.tokens[r].push_back(out[i].token);
        res.logp[r].push_back(out[i].logp);
        res.logp_sampling[r].push_back(out[i].logp_sampling);
      }
    };

    // Prefill: every prompt row at once into the slot of its prompt's first sample.
    for (int p = 0; p < NP; p++)
      for (int t = 0; t < static_cast<int>(req.prompts[p].size()); t++) {
        tok.push_back(req.prompts[p][t]);
        pos.push_back(t);
        slot.push_back(p * n);
      }
    const int rows0 = static_cast<int>(tok.size());
    int32_t* d = stage(rows0);
    const float* hidden = forward_cached(d, d + rows0, d + 2 * rows0, rows0, len);
    pick.assign(S, 0);
    row_seq.resize(S);
    const size_t per_layer = static_cast<size_t>(S) * KVH * len * hd;
    int row = 0;
    for (int p = 0; p < NP; p++) {
      row += static_cast<int>(req.prompts[p].size());
      for (int j = 0; j < n; j++) {
        pick[p * n + j] = row - 1;
        row_seq[p * n + j] = p * n + j;
        if (j == 0) continue;
        // Share the prompt's cache with sample j (positions 0..len(prompt)-1).
        const size_t cnt = req.prompts[p].size() * hd;
        for (int l = 0; l < cfg_.n_layer; l++)
          for (int kv = 0; kv < 2; kv++)
            for (int h = 0; h < KVH; h++) {
              unsigned char* layer = kv_.get() + (2 * l + kv) * per_layer * esz;
              const unsigned char* src = layer + (static_cast<size_t>(p * n) * KVH + h) * len * hd * esz;
              unsigned char* dst = layer + (static_cast<size_t>(p * n + j) * KVH + h) * len * hd * esz;
              SCORE_CUDA_CHECK(cudaMemcpyAsync(dst, src, cnt * esz, cudaMemcpyDeviceToDevice, stream_));
            }
      }
    }
    sample_upload(S);
    sample_device(hidden, S);
    sample_results(S);

    auto finished = [&](int r) {
      return generation_done(req, res.tokens[r], static_cast<int>(req.prompts[r / n].size()), len, &res.finish[r]);
    };
    std::vector<int> active;
    for (int r = 0; r < S; r++)
      if (!finished(r)) active.push_back(r);
    int step = 1;
    if (req.progress) req.progress(step, static_cast<int>(active.size()));
    // Decode. Eager: the active sequences' rows, launched kernel by kernel. Graph: all S
    // sequences' rows every step (a finished sequence's row is a stand-in, token 0 at
    // position 0 of its own cache, which nothing reads again), so that the device work
    // of a step keeps its shapes and pointers: the first step runs eagerly (it allocates
    // the buffers and makes the cuBLASLt plans), the second is captured, and every step
    // from then on is one graph launch.
    const bool graph = opt_.decode == DecodeKind::Graph;
    DecodeGraph dg;
    while (!active.empty()) {
      SCORE_CHECK(!(req.cancel && req.cancel->load()), Aborted, "generate: aborted");
      const int rows = graph ? S : static_cast<int>(active.size());
      tok.assign(rows, 0), pos.assign(rows, 0), row_seq.assign(rows, -1), pick.resize(rows);
      slot.resize(rows);
      for (int i = 0; i < rows; i++) slot[i] = i, pick[i] = i;  // graph: row r is sequence r
      for (size_t k = 0; k < active.size(); k++) {
        const int r = active[k], i = graph ? r : static_cast<int>(k);
        tok[i] = res.tokens[r].back();
        pos[i] = static_cast<int>(req.prompts[r / n].size() + res.tokens[r].size()) - 1;
        slot[i] = r;
        row_seq[i] = r;
      }
      d = stage(rows);
      sample_upload(rows);
      auto device_step = [&] { sample_device(forward_cached(d, d + rows, d + 2 * rows, rows, len), rows); };
      if (!graph || step == 1)
        device_step();
      else
        dg.run(stream_, device_step);
      sample_results(rows);
      std::vector<int> still;
      for (int r : active)
        if (!finished(r)) still.push_back(r);
      active.swap(still);
      step++;
      if (req.progress) req.progress(step, static_cast<int>(active.size()));
    }
    res.steps = step;
    return res;
  }

  ModelConfig cfg_;
  ParamLayout layout_;
  bool trainable_;
  Options opt_;
  bool flash_ = false;  // attention_flash.cu for training and scoring passes
  cudaStream_t stream_ = nullptr;
  std::unique_ptr<LtMatmul> lt_;  // cuBLASLt plans (nullptr: our GEMM for every product)
  mutable std::string broken_;  // non-empty: a device error happened; refuse further calls

  DeviceBuffer<float> params_, grads_, m_, v_;  // (numel) each, ParamLayout order
  DeviceBuffer<uint16_t> params16_;             // (numel) bf16 copy of params_ (W16)
  bool params16_stale_ = true;                  // params_ changed since the copy
  int64_t step_ = 0;
  DeviceBuffer<float> rope_cos_, rope_sin_;     // (maxT, hd/2)
  DeviceBuffer<double> norm_;
  DeviceBuffer<AdamWChunk> adamw_chunks_;  // (n_adamw_chunks_) the layout cut into blocks' work
  int n_adamw_chunks_ = 0;

  // Last forward's batch and activations.
  int B_ = 0, T_ = 0;
  DeviceBuffer<float> acts_;
  std::vector<LayerActs> layers_;
  DeviceBuffer<uint16_t> acts16_;        // the arena of layers16_ and grads16_
  std::vector<LayerActs16> layers16_;
  Grads16 grads16_;
  float *xfinal_ = nullptr, *lnf_ = nullptr, *lnf_mean_ = nullptr, *lnf_rstd_ = nullptr;
  float *dres_ = nullptr, *dln_ = nullptr, *dqkv_ = nullptr, *datty_ = nullptr, *dh_ = nullptr,
        *dact_ = nullptr, *datt_ = nullptr;
  DeviceBuffer<float> dhidden_, loss_arrays_;

  // Batch bookkeeping (host) and its device copies.
  std::vector<int32_t> slot_;
  size_t ntarget_ = 0;
  DeviceBuffer<int32_t> ints_;
  int32_t *d_tokens_ = nullptr, *d_pos_ = nullptr, *d_rows_ = nullptr, *d_target_ = nullptr,
          *d_slot_ = nullptr;

  // Classifier scratch: (chunk, V) logits, (chunk, C) hidden rows and their gradient,
  // per-row outputs (targets) and statistics (4 x targets, double).
  DeviceBuffer<float> logits_, chunk_h_, chunk_dh_, row_logp_, row_ent_;
  DeviceBuffer<uint16_t> cls16_;  // bf16 precision: the chunk's hidden rows, then dlogits
  DeviceBuffer<double> row_stats_;

  // Generation: the KV cache, (L, 2, slots, KVH, len, hd) elements of kv_elem() bytes
  // (bf16 in bf16 precision: half the memory and the bytes a decode step reads; else
  // float32), and decode scratch.
  DeviceBuffer<unsigned char> kv_;
  size_t kv_elem() const { return bf16() ? sizeof(uint16_t) : sizeof(float); }
  DeviceBuffer<float> dec_;
  DeviceBuffer<uint16_t> dec16_;  // bf16 copies of the decode rows' product inputs
  DeviceBuffer<int32_t> gen_ints_;
  // Device sampling (SamplingKind::Device): per row uniform, token + status, logp + logp_sampling.
  DeviceBuffer<double> samp_u_;
  DeviceBuffer<int32_t> samp_i_;
  DeviceBuffer<float> samp_f_;
  int kv_slots_ = 0;
};

// The choice an environment variable names: unset or empty is the first (the default);
// a value not among them throws InvalidArgument naming the accepted ones.
template <typename Kind>
Kind from_env(const char* name, std::initializer_list<std::pair<const char*, Kind>> choices) {
  const char* env = std::getenv(name);
  const std::string v = env ? env : "";
  if (v.empty()) return choices.begin()->second;
  std::string accepted;
  for (const auto& [text, kind] : choices) {
    if (v == text) return kind;
    accepted += (accepted.empty() ? "'" : "' or '") + std::string(text);
  }
  throw Error(ErrorCode::InvalidArgument, std::string(name) + "='" + v + "': expected " + accepted +
                                              "' (the first is the default)");
}

}  // namespace

AttentionKind resolve_attention(AttentionKind requested) {
  if (requested != AttentionKind::Auto) return requested;
  return from_env<AttentionKind>("SCORE_CUDA_ATTENTION", {{"flash", AttentionKind::Flash},
                                                          {"materialising", AttentionKind::Materialising}});
}

SamplingKind resolve_sampling(SamplingKind requested) {
  if (requested != SamplingKind::Auto) return requested;
  return from_env<SamplingKind>("SCORE_CUDA_SAMPLING",
                                {{"device", SamplingKind::Device}, {"host", SamplingKind::Host}});
}

DecodeKind resolve_decode(DecodeKind requested) {
  if (requested != DecodeKind::Auto) return requested;
  return from_env<DecodeKind>("SCORE_CUDA_DECODE", {{"eager", DecodeKind::Eager}, {"graph", DecodeKind::Graph}});
}

std::string describe_device(int index) {
  int count = 0;
  cudaError_t err = cudaGetDeviceCount(&count);
  if (err == cudaErrorInsufficientDriver || err == cudaErrorNoDevice || count == 0) {
    cudaGetLastError();  // not sticky; clear it
    throw Error(ErrorCode::Device,
                err == cudaErrorInsufficientDriver
                    ? "no usable NVIDIA driver (the installed driver is missing or older than this "
                      "build's CUDA runtime)"
                    : "no CUDA device found");
  }
  if (err != cudaSuccess) {
    cudaGetLastError();
    throw Error(ErrorCode::Device, std::string("CUDA initialisation failed: ") + cudaGetErrorName(err) +
                                       " (" + cudaGetErrorString(err) + ")");
  }
  SCORE_CHECK(index >= 0 && index < count, Device,
              "CUDA device " + std::to_string(index) + " does not exist (" + std::to_string(count) +
                  " found)");
  cudaDeviceProp prop;
  SCORE_CUDA_CHECK(cudaGetDeviceProperties(&prop, index));
  return std::string(prop.name) + " (sm_" + std::to_string(prop.major) + std::to_string(prop.minor) +
         ", " + std::to_string(prop.totalGlobalMem >> 30) + " GiB)";
}

std::unique_ptr<Backend> create_backend(const ModelConfig& cfg, bool trainable, const Options& opt) {
  const std::string desc = describe_device(opt.device);
  cudaDeviceProp prop;
  SCORE_CUDA_CHECK(cudaGetDeviceProperties(&prop, opt.device));
  SCORE_CHECK(prop.major >= 8, Device,
              "the CUDA backend needs compute capability 8.0 or newer (bf16 tensor cores); " + desc +
                  " is sm_" + std::to_string(prop.major) + std::to_string(prop.minor));
  SCORE_CHECK(cfg.head_dim <= 256, Unsupported, "the CUDA backend supports head_dim up to 256");
  // Probe that this build has kernels for the device (sm_80 / sm_90 images; newer GPUs
  // run the sm_90 PTX through the driver's JIT).
  SCORE_CUDA_CHECK(cudaSetDevice(opt.device));
  {
    DeviceBuffer<float> probe;
    float* p = probe.ensure(1);
    try {
      add_inplace(p, p, 1, nullptr);
      SCORE_CUDA_CHECK(cudaDeviceSynchronize());
    } catch (const Error& e) {
      throw Error(ErrorCode::Device, "the CUDA backend was built for sm_80 and sm_90 and cannot run on " +
                                         desc + ": " + e.what());
    }
  }
  return std::make_unique<CudaBackend>(cfg, trainable, opt);
}

}  // namespace score::cuda

// The C entry point of libscore_cuda.so (see native/core/backend_loader.cpp): never
// throws; nullptr and a message when the device cannot be used.
extern "C" __attribute__((visibility("default"))) score::Backend* score_cuda_create_backend(
    const score::ModelConfig* cfg, bool trainable, char* err, size_t errlen) {
  auto fail = [&](const std::string& msg) -> score::Backend* {
    if (err && errlen) {
      std::strncpy(err, msg.c_str(), errlen - 1);
      err[errlen - 1] = '\0';
    }
    return nullptr;
  };
  try {
    score::cuda::Options opt;
    return score::cuda::create_backend(*cfg, trainable, opt).release();
  } catch (const std::exception& e) {
    return fail(e.what());
  } catch (...) {
    return fail("unknown error while creating the CUDA backend");
  }
}

// "NVIDIA H200 (sm_90, 139 GiB)" for device `index` into `out`; returns false and the
// reason (no driver, no device) instead. For `score-rl inspect` through the addon.
extern "C" __attribute__((visibility("default"))) bool score_cuda_describe_device(int index, char* out,
                                                                                   size_t outlen) {
  std::string text;
  bool ok = true;
  try {
    text = score::cuda::describe_device(index);
  } catch (const std::exception& e) {
    text = e.what();
    ok = false;
  }
  if (out && outlen) {
    std::strncpy(out, text.c_str(), outlen - 1);
    out[outlen - 1] = '\0';
  }
  return ok;
}
