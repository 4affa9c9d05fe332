// The CPU backend: a Transformer<float> plus the fused classifier/loss and AdamW.
#include <algorithm>
#include <cmath>
#include <functional>
#include <vector>

#include "cpu/generate.h"
#include "cpu/kernels.h"
#include "cpu/transformer.h"
#include "score/backend.h"
#include "score/errors.h"
#include "score/memory.h"
#include "score/token_loss.h"

namespace score {
namespace {

class CpuBackend final : public Backend {
 public:
  // Gradients are allocated at the first backward: a trainable model that only
  // scores or samples costs no more memory than a frozen one.
  CpuBackend(const ModelConfig& cfg, bool trainable) : net_(cfg, false), trainable_(trainable) {}

  std::string name() const override { return "cpu"; }

  std::unique_ptr<Backend> clone(bool trainable) const override {
    auto copy = std::make_unique<CpuBackend>(net_.config(), trainable);
    copy->net_.params = net_.params;
    return copy;
  }

  void set_params(const float* host) override {
    std::copy(host, host + net_.params.size(), net_.params.begin());
  }
  void get_params(float* host) const override {
    std::copy(net_.params.begin(), net_.params.end(), host);
  }

  void logprobs(const TokenBatch& batch, float* logp, float* entropy) override {
    const int N = batch.B * batch.T;
    check_batch_memory(batch, false);
    prepare(batch);
    const float* hidden = net_.forward(batch.tokens, pos_.data(), batch.B, batch.T);
    row_logp_.resize(N);
    row_ent_.resize(N);
    cpu::classifier_forward_backward<float>(row_logp_.data(), entropy ? row_ent_.data() : nullptr,
                                            nullptr, nullptr, hidden, net_.lm_head(),
                                            target_.data(), N, net_.config().d_model,
                                            net_.config().vocab_size, nullptr);
    unpack(batch, row_logp_.data(), logp);
    if (entropy) unpack(batch, row_ent_.data(), entropy);
  }

  LossStats loss_backward(const TokenBatch& batch, const TokenLoss& loss) override {
    SCORE_CHECK(trainable_, InvalidArgument, "this model is frozen (no gradients)");
    check_batch_memory(batch, true);
    if (net_.grads.empty()) net_.grads.assign(net_.params.size(), 0.0f);
    const int B = batch.B, T = batch.T, N = B * T, C = net_.config().d_model;
    prepare(batch);
    const float* hidden = net_.forward(batch.tokens, pos_.data(), B, T);
    // Row n = b*T + t predicts tokens[b, t+1]; its per-token arrays are at slot b*(T-1) + t.
    auto at = [T](int n) { return (n / T) * (T - 1) + n % T; };
    const double inv_norm = 1.0 / loss.norm;
    LossStats st;
    double pg_sum = 0, kl_sum = 0, kl_w = 0, clipped_w = 0;
    // dLoss/dlogp of one token; called once per target row, in order, by the classifier.
    std::function<double(int, double)> coef = [&](int n, double lp) -> double {
      const int i = at(n);
      const double w = loss.weight[i];
      st.tokens++;
      st.weight_sum += w;
      const TokenLossTerms t = token_loss(loss, i, lp);
      pg_sum += w * t.pg;
      kl_sum += w * t.kl;
      kl_w += w * t.kl_raw;
      if (t.clipped) clipped_w += w;
      return w * t.dlogp * inv_norm;
    };
    dhidden_.assign(static_cast<size_t>(N) * C, 0.0f);
    row_logp_.resize(N);
    row_ent_.resize(N);
    cpu::classifier_forward_backward<float>(row_logp_.data(), loss.rl ? row_ent_.data() : nullptr,
                                            dhidden_.data(), net_.lm_head_grad(), hidden,
                                            net_.lm_head(), target_.data(), N, C,
                                            net_.config().vocab_size, &coef);
    net_.backward(dhidden_.data());
    st.pg_loss = pg_sum * inv_norm;
    st.kl_loss = kl_sum * inv_norm;
    st.loss = st.pg_loss + st.kl_loss;
    if (loss.rl && st.weight_sum > 0) {
      double ent = 0;
      for (int n = 0; n < N; n++)
        if (target_[n] >= 0) ent += loss.weight[at(n)] * double(row_ent_[n]);
      st.entropy_mean = ent / st.weight_sum;
      st.kl_mean = kl_w / st.weight_sum;
      st.clip_frac = clipped_w / st.weight_sum;
    }
    return st;
  }

  GenerateResult generate(const GenerateRequest& req) override { return cpu::generate(net_, req, gen_); }

  StepStats optimizer_step(const AdamWConfig& opt) override {
    SCORE_CHECK(trainable_, InvalidArgument, "this model is frozen (no gradients)");
    const size_t n = net_.params.size();
    if (net_.grads.empty()) net_.grads.assign(n, 0.0f);  // a step with no backward: zero gradients
    if (m_.empty()) {
      m_.assign(n, 0.0f);
      v_.assign(n, 0.0f);
    }
    StepStats st;
    st.grad_norm = std::sqrt(cpu::sum_squares(net_.grads.data(), n));
    if (!std::isfinite(st.grad_norm)) {
      // A poisoned step: leave weights and moments untouched, drop the gradients.
      zero_grad();
      st.skipped = true;
      st.step = step_;
      return st;
    }
    if (opt.max_grad_norm > 0 && st.grad_norm > opt.max_grad_norm)
      st.clip_scale = opt.max_grad_norm / (st.grad_norm + 1e-6);
    step_++;
    for (const TensorSpec& t : net_.layout().tensors())
      cpu::adamw_update(net_.params.data() + t.offset, net_.grads.data() + t.offset,
                        m_.data() + t.offset, v_.data() + t.offset, t.numel, opt.lr, opt.beta1,
                        opt.beta2, opt.eps, t.decay ? opt.weight_decay : 0.0f,
                        static_cast<int>(step_), static_cast<float>(st.clip_scale));
    zero_grad();
    st.step = step_;
    return st;
  }

  void zero_grad() override { std::fill(net_.grads.begin(), net_.grads.end(), 0.0f); }

  int64_t get_optimizer_state(float* m, float* v) const override {
    SCORE_CHECK(trainable_, InvalidArgument, "this model is frozen (no optimizer state)");
    const size_t n = net_.params.size();
    if (m_.empty()) {
      std::fill(m, m + n, 0.0f);
      std::fill(v, v + n, 0.0f);
    } else {
      std::copy(m_.begin(), m_.end(), m);
      std::copy(v_.begin(), v_.end(), v);
    }
    return step_;
  }

  void set_optimizer_state(const float* m, const float* v, int64_t step) override {
    SCORE_CHECK(trainable_, InvalidArgument, "this model is frozen (no optimizer state)");
    const size_t n = net_.params.size();
    m_.assign(m, m + n);
    v_.assign(v, v + n);
    step_ = step;
  }

  // A batch that would not fit fails here, with the estimate, before anything is allocated:
  // the activations it adds to what is held, gradients at the first backward, and the
  // classifier's scratch (about 32 MiB of logits). The generation workspace is released
  // first when the batch would not fit beside it.
  void check_batch_memory(const TokenBatch& b, bool backward) {
    const size_t want = cpu::Transformer<float>::activation_bytes_for(net_.config(), b.B, b.T, backward);
    const size_t held = net_.activation_bytes();
    size_t need = (want > held ? want - held : 0) + (size_t(8) << 22);
    if (backward && net_.grads.empty()) need += net_.params.size() * sizeof(float);
    if (gen_.bytes() > 0 && need > available_memory()) gen_.release();
    check_memory(need, "a batch of " + std::to_string(b.B) + " x " + std::to_string(b.T) + " tokens" +
                           (backward ? " (forward + backward)" : ""));
  }

  MemoryUse memory_use() const override {
    MemoryUse u;
    u.params = net_.params.size() * sizeof(float);
    u.grads = net_.grads.size() * sizeof(float);
    u.optimizer = (m_.size() + v_.size()) * sizeof(float);
    u.activations = net_.saved_activation_bytes();
    u.scratch = net_.scratch_bytes() + (row_logp_.size() + row_ent_.size()) * sizeof(float) + gen_.bytes();
    return u;
  }

 private:
  // Positions 0..T-1 per row, and the next-token targets (-1 past a row's end).
  void prepare(const TokenBatch& b) {
    const int N = b.B * b.T;
    pos_.resize(N);
    target_.resize(N);
    for (int r = 0; r < b.B; r++)
      for (int t = 0; t < b.T; t++) {
        pos_[r * b.T + t] = t;
        target_[r * b.T + t] = t + 1 < b.lengths[r] ? b.tokens[r * b.T + t + 1] : -1;
      }
  }
  // (B*T) per-row values -> (B, T-1) per-target-slot values, zero past the end.
  static void unpack(const TokenBatch& b, const float* rows, float* out) {
    for (int r = 0; r < b.B; r++)
      for (int t = 0; t + 1 < b.T; t++)
        out[r * (b.T - 1) + t] = t + 1 < b.lengths[r] ? rows[r * b.T + t] : 0.0f;
  }

  cpu::Transformer<float> net_;
  bool trainable_;
  std::vector<float> m_, v_;  // AdamW moments, allocated at the first step
  int64_t step_ = 0;
  std::vector<int32_t> pos_, target_;
  std::vector<float> row_logp_, row_ent_, dhidden_;
  cpu::GenerateWorkspace gen_;  // KV cache and packed weights, kept between generate calls
};

}  // namespace

std::unique_ptr<Backend> create_cpu_backend(const ModelConfig& cfg, bool trainable) {
  return std::make_unique<CpuBackend>(cfg, trainable);
}

}  // namespace score
