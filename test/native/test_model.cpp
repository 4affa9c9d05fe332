// Whole-model tests: gradients of every parameter against finite differences
// in float64 for each architecture, float32 against float64, and the Model
// facade's validation, cloning and optimizer behaviour.
#define SCORE_TEST_MAIN
#include <cmath>
#include <cstring>

#include "check.h"
#include "model_util.h"
#include "score/errors.h"
#include "score/model.h"

using score::Arch;
using score::cpu::Transformer;
using namespace score_test;

// Every parameter of a tiny model of `arch`: analytic gradient vs central
// differences. In float64 with h = 1e-5 the truncation error is O(h^2 L''') ~ 1e-10
// and the rounding error ~ 1e-16 |L| / h ~ 1e-11, so 1e-7 absolute + 1e-6 relative
// leaves a wide margin while any wrong term (errors of order |g|) fails.
static void check_model_gradients(Arch arch) {
  const score::ModelConfig cfg = tiny_config(arch);
  Transformer<double> net(cfg, true);
  randomize(net.params, net.layout(), 42);
  const Batch b = make_batch(cfg.vocab_size, 6, {6, 4, 2}, 7);
  weighted_nll(net, b, true);
  const std::vector<double> g = net.grads;
  int bad = 0;
  double worst = 0;
  for (const score::TensorSpec& t : net.layout().tensors()) {
    for (size_t i = 0; i < t.numel; i++) {
      double& w = net.params[t.offset + i];
      const double w0 = w, h = 1e-5;
      w = w0 + h;
      const double lp = weighted_nll(net, b, false);
      w = w0 - h;
      const double lm = weighted_nll(net, b, false);
      w = w0;
      const double fd = (lp - lm) / (2 * h), an = g[t.offset + i];
      const double err = std::fabs(fd - an);
      worst = std::max(worst, err / (1e-7 + 1e-6 * std::fabs(fd)));
      if (err > 1e-7 + 1e-6 * std::fabs(fd) && bad++ < 5)
        std::fprintf(stderr, "  %s %s[%zu]: analytic %.10g vs fd %.10g\n", score::arch_name(arch),
                     t.name.c_str(), i, an, fd);
    }
  }
  std::printf("  %s: %zu parameters, worst error / tolerance %.3g\n", score::arch_name(arch),
              net.layout().numel(), worst);
  CHECK(bad == 0);
}

TEST(gpt2_gradients_match_finite_differences) { check_model_gradients(Arch::GPT2); }
TEST(llama_gradients_match_finite_differences) { check_model_gradients(Arch::Llama); }
TEST(qwen2_gradients_match_finite_differences) { check_model_gradients(Arch::Qwen2); }

// Gradients must not depend on padding: a row's loss and gradient are the
// same alone and inside a batch with a longer row (right padding, causal mask).
TEST(padding_does_not_leak) {
  const score::ModelConfig cfg = tiny_config(Arch::Llama);
  Transformer<double> a(cfg, true), b(cfg, true);
  randomize(a.params, a.layout(), 3);
  b.params = a.params;
  Batch alone = make_batch(cfg.vocab_size, 4, {4}, 11);
  Batch both = make_batch(cfg.vocab_size, 7, {4, 7}, 11);
  // copy row 0 of `alone` into row 0 of `both`, fill its padding with other ids
  for (int t = 0; t < 7; t++) {
    both.tokens[t] = t < 4 ? alone.tokens[t] : (t * 5) % cfg.vocab_size;
    both.target[t] = t < 3 ? alone.target[t] : -1;
    both.weight[t] = t < 3 ? alone.weight[t] : 0.0;
  }
  for (int t = 0; t < 7; t++) both.weight[7 + t] = 0.0;  // only row 0 counts
  const double la = weighted_nll(a, alone, true), lb = weighted_nll(b, both, true);
  CHECK_NEAR(la, lb, 1e-12, 1e-12);
  double maxdiff = 0;
  for (size_t i = 0; i < a.grads.size(); i++) maxdiff = std::max(maxdiff, std::fabs(a.grads[i] - b.grads[i]));
  CHECK(maxdiff < 1e-12);
}

// The float32 product path against the float64 reference on the same weights:
// a few ulps per operation over a 2-layer model stays far below 1e-4 relative.
TEST(float32_matches_float64) {
  for (Arch arch : {Arch::GPT2, Arch::Llama, Arch::Qwen2}) {
    const score::ModelConfig cfg = tiny_config(arch);
    Transformer<double> d(cfg, true);
    Transformer<float> f(cfg, true);
    randomize(d.params, d.layout(), 5);
    for (size_t i = 0; i < d.params.size(); i++) f.params[i] = static_cast<float>(d.params[i]);
    for (size_t i = 0; i < d.params.size(); i++) d.params[i] = f.params[i];  // same values exactly
    const Batch b = make_batch(cfg.vocab_size, 8, {8, 5}, 9);
    const double ld = weighted_nll(d, b, true), lf = weighted_nll(f, b, true);
    CHECK_NEAR(lf, ld, 1e-6, 1e-5);
    double gmax = 0, emax = 0;
    for (size_t i = 0; i < d.grads.size(); i++) {
      gmax = std::max(gmax, std::fabs(d.grads[i]));
      emax = std::max(emax, std::fabs(d.grads[i] - f.grads[i]));
    }
    CHECK(emax <= 1e-4 * gmax);
  }
}

static score::TokenBatch batch_of(const std::vector<int32_t>& tokens, const std::vector<int32_t>& lengths, int T) {
  score::TokenBatch b;
  b.tokens = tokens.data();
  b.lengths = lengths.data();
  b.B = static_cast<int>(lengths.size());
  b.T = T;
  return b;
}

TEST(model_rejects_bad_batches) {
  auto m = score::Model::init(tiny_config(Arch::GPT2), 1);
  std::vector<float> logp(16);
  std::vector<int32_t> toks = {1, 2, 3, 4}, lens = {4};
  std::vector<int32_t> bad_tok = {1, 2, 13, 4};
  CHECK_THROWS(m->logprobs(batch_of(bad_tok, lens, 4), logp.data(), nullptr), InvalidArgument,
               "tokens[0][2] = 13 is outside the vocabulary");
  std::vector<int32_t> neg = {1, -1, 3, 4};
  CHECK_THROWS(m->logprobs(batch_of(neg, lens, 4), logp.data(), nullptr), InvalidArgument, "outside the vocabulary");
  std::vector<int32_t> long_lens = {5};
  CHECK_THROWS(m->logprobs(batch_of(toks, long_lens, 4), logp.data(), nullptr), InvalidArgument, "lengths[0] = 5");
  std::vector<int32_t> long_toks(9, 1), lens9 = {9};
  CHECK_THROWS(m->logprobs(batch_of(long_toks, lens9, 9), logp.data(), nullptr), InvalidArgument,
               "exceeds the model's 8 positions");
  std::vector<float> w = {1, 1, 1};
  score::TokenLoss loss;
  loss.weight = w.data();
  loss.norm = 0;
  CHECK_THROWS(m->sft_backward(batch_of(toks, lens, 4), loss), InvalidArgument, "norm");
  w[1] = NAN;
  loss.norm = 1;
  CHECK_THROWS(m->sft_backward(batch_of(toks, lens, 4), loss), InvalidArgument, "not finite");
  score::AdamWConfig opt;
  opt.beta1 = 1.0f;
  CHECK_THROWS(m->optimizer_step(opt), InvalidArgument, "beta1");
}

TEST(frozen_clone_refuses_training_and_keeps_weights) {
  auto m = score::Model::init(tiny_config(Arch::Qwen2), 2);
  auto ref = m->clone(false);
  CHECK(!ref->trainable());
  CHECK(ref->get_params() == m->get_params());
  std::vector<int32_t> toks = {1, 2, 3, 4}, lens = {4};
  std::vector<float> w = {1, 1, 1};
  score::TokenLoss loss;
  loss.weight = w.data();
  CHECK_THROWS(ref->sft_backward(batch_of(toks, lens, 4), loss), InvalidArgument, "frozen");
  // Gradients come with the first backward; a frozen model never holds them.
  CHECK(ref->memory_bytes() <= m->memory_bytes());
  // Training the policy leaves the reference unchanged.
  const std::vector<float> before = ref->get_params();
  m->sft_backward(batch_of(toks, lens, 4), loss);
  CHECK(ref->memory_bytes() < m->memory_bytes());
  score::AdamWConfig opt;
  opt.lr = 1e-2f;
  m->optimizer_step(opt);
  CHECK(ref->get_params() == before);
  CHECK(m->get_params() != before);
}

// The memory breakdown: weights from the start, gradients from the first backward, AdamW
// moments from the first step, kept activations exactly as the estimate for the batch
// (the estimate also counts the backward buffers, which are reported as scratch).
TEST(memory_use_by_kind) {
  const score::ModelConfig c = tiny_config(Arch::GPT2);
  auto m = score::Model::init(c, 3);
  const size_t P = m->num_params() * sizeof(float);
  score::MemoryUse u = m->memory_use();
  CHECK(u.params == P && u.grads == 0 && u.optimizer == 0 && u.activations == 0);
  std::vector<int32_t> toks = {1, 2, 3, 4, 5, 6, 7, 8}, lens = {4, 3};
  std::vector<float> w(6, 1.0f);
  score::TokenLoss loss;
  loss.weight = w.data();
  m->sft_backward(batch_of(toks, lens, 4), loss);
  u = m->memory_use();
  CHECK(u.grads == P && u.optimizer == 0);
  const size_t est = score::cpu::Transformer<float>::activation_bytes_for(c, 2, 4, true);
  CHECK(u.activations > 0 && u.scratch > 0);
  CHECK(u.activations + u.scratch >= est);  // scratch also holds per-row loss buffers
  CHECK(u.activations < est);
  m->optimizer_step(score::AdamWConfig());
  u = m->memory_use();
  CHECK(u.optimizer == 2 * P);
  CHECK(m->memory_bytes() == u.total());
}

// SFT on one sequence drives its loss down (the whole train step works), and
// accumulating two half-weight micro-batches equals one full batch.
TEST(sft_steps_learn_and_accumulate) {
  auto m = score::Model::init(tiny_config(Arch::Llama), 3);
  std::vector<int32_t> toks = {1, 5, 2, 7, 3, 9}, lens = {6};
  std::vector<float> w(5, 1.0f);
  score::TokenLoss loss;
  loss.weight = w.data();
  loss.norm = 5;
  score::AdamWConfig opt;
  opt.lr = 3e-2f;
  opt.max_grad_norm = 1.0f;
  double first = 0, last = 0;
  for (int i = 0; i < 60; i++) {
    score::LossStats st = m->sft_backward(batch_of(toks, lens, 6), loss);
    if (i == 0) first = st.loss;
    last = st.loss;
    score::StepStats ss = m->optimizer_step(opt);
    CHECK(ss.step == i + 1);
    CHECK(ss.clip_scale <= 1.0);
  }
  CHECK(last < 0.1 * first);

  auto a = score::Model::init(tiny_config(Arch::GPT2), 4);
  auto b = a->clone(true);
  std::vector<int32_t> t2 = {1, 2, 3, 4, 5, 6, 7, 8}, l2 = {4, 4};
  std::vector<float> w2(6, 1.0f);
  score::TokenLoss full;
  full.weight = w2.data();
  full.norm = 6;
  a->sft_backward(batch_of(t2, l2, 4), full);
  std::vector<int32_t> r0 = {1, 2, 3, 4}, r1 = {5, 6, 7, 8}, l1 = {4};
  std::vector<float> w1(3, 1.0f);
  score::TokenLoss half;
  half.weight = w1.data();
  half.norm = 6;
  b->sft_backward(batch_of(r0, l1, 4), half);
  b->sft_backward(batch_of(r1, l1, 4), half);
  score::AdamWConfig o;
  o.lr = 1e-2f;
  score::StepStats sa = a->optimizer_step(o), sb = b->optimizer_step(o);
  CHECK_NEAR(sa.grad_norm, sb.grad_norm, 1e-6, 1e-5);
  const std::vector<float> pa = a->get_params(), pb = b->get_params();
  double maxdiff = 0;
  for (size_t i = 0; i < pa.size(); i++) maxdiff = std::max(maxdiff, double(std::fabs(pa[i] - pb[i])));
  CHECK(maxdiff < 1e-6);
}

// One optimizer step through the Model against the AdamW formula written out here:
// the global gradient norm (from an independent float64 backward), the clip scale,
// bias-corrected moments, and decoupled weight decay on matrices only (not on norm
// weights or biases). eps = 1 makes the step depend on the gradient's magnitude, so
// a wrong clip scale shows; the decay moves weights by lr * wd * p = 1e-3 p.
TEST(optimizer_step_clips_global_norm_and_decays_matrices_only) {
  const score::ModelConfig cfg = tiny_config(Arch::Llama);
  auto m = score::Model::init(cfg, 8);
  const std::vector<float> p0 = m->get_params();
  std::vector<int32_t> toks = {1, 5, 2, 7, 3, 9, 4, 0, 6, 8, 11, 12}, lens = {6, 4};
  std::vector<float> w(10, 1.0f);
  w[1] = 0.0f;  // a masked target
  score::TokenLoss loss;
  loss.weight = w.data();
  loss.norm = 9;
  m->sft_backward(batch_of(toks, lens, 6), loss);

  // Reference gradient in float64 on the same weights.
  Transformer<double> net(cfg, true);
  for (size_t i = 0; i < p0.size(); i++) net.params[i] = p0[i];
  Batch b;
  b.B = 2;
  b.T = 6;
  b.tokens = toks;
  b.pos.resize(12);
  b.target.assign(12, -1);
  b.weight.assign(12, 0.0);
  constexpr int len[2] = {6, 4};
  for (int r = 0; r < 2; r++)
    for (int t = 0; t < 6; t++) {
      b.pos[r * 6 + t] = t;
      if (t + 1 < len[r]) {
        b.target[r * 6 + t] = toks[r * 6 + t + 1];
        b.weight[r * 6 + t] = w[r * 5 + t] / 9.0;
      }
    }
  weighted_nll(net, b, true);
  double norm = 0;
  for (double g : net.grads) norm += g * g;
  norm = std::sqrt(norm);

  score::AdamWConfig opt;
  opt.lr = 1e-2f, opt.beta1 = 0.9f, opt.beta2 = 0.95f, opt.eps = 1.0f, opt.weight_decay = 0.1f;
  opt.max_grad_norm = static_cast<float>(0.25 * norm);
  const score::StepStats st = m->optimizer_step(opt);
  // float32 backward vs float64: ~1e-6 relative (see float32_matches_float64).
  CHECK_NEAR(st.grad_norm, norm, 0, 1e-5);
  const double scale = double(opt.max_grad_norm) / (st.grad_norm + 1e-6);
  CHECK_NEAR(st.clip_scale, scale, 0, 1e-6);
  CHECK(st.step == 1 && !st.skipped);

  const std::vector<float> p1 = m->get_params();
  double worst = 0;
  for (const score::TensorSpec& t : m->layout().tensors()) {
    CHECK(t.decay == (t.shape.size() == 2));  // matrices decay; norm weights and biases do not
    const double wd = t.decay ? opt.weight_decay : 0.0;
    for (size_t i = t.offset; i < t.offset + t.numel; i++) {
      const double g = net.grads[i] * scale;
      // step 1: m_hat = g, v_hat = g^2
      const double expect = p0[i] - opt.lr * (g / (std::fabs(g) + opt.eps) + wd * p0[i]);
      // float rounding of the stored weight (|p| < 1: 6e-8) plus the float gradient's
      // error (1e-6 relative) through a step of lr * |g| / (|g| + 1) <= 1e-2 |g|.
      const double err = std::fabs(p1[i] - expect), tol = 1e-7 + 1e-7 * std::fabs(expect);
      worst = std::max(worst, err / tol);
      if (err > tol && worst == err / tol)
        std::fprintf(stderr, "  %s[%zu]: %.9g, expected %.9g\n", t.name.c_str(), i - t.offset, p1[i], expect);
    }
  }
  std::printf("  worst error / tolerance %.3g\n", worst);
  CHECK(worst <= 1.0);
}

// A non-finite gradient skips the step: weights and step count unchanged.
TEST(nonfinite_gradient_skips_the_step) {
  auto m = score::Model::init(tiny_config(Arch::GPT2), 5);
  std::vector<float> p = m->get_params();
  p[3] = INFINITY;  // poisons the forward of token 0 -> NaN loss and gradients
  m->set_params(p);
  std::vector<int32_t> toks = {0, 1, 2}, lens = {3};
  std::vector<float> w(2, 1.0f);
  score::TokenLoss loss;
  loss.weight = w.data();
  loss.norm = 2;
  m->sft_backward(batch_of(toks, lens, 3), loss);
  score::AdamWConfig opt;
  opt.lr = 1e-2f;
  score::StepStats st = m->optimizer_step(opt);
  CHECK(st.skipped);
  CHECK(st.step == 0);
  const std::vector<float> after = m->get_params();
  CHECK(std::memcmp(after.data(), p.data(), p.size() * sizeof(float)) == 0);
}

TEST(unknown_device_and_missing_cuda_are_clear_errors) {
  score::DeviceOptions dev;
  dev.device = "tpu";
  CHECK_THROWS(score::Model::init(tiny_config(Arch::GPT2), 1, dev), InvalidArgument, "device 'tpu'");
  dev.device = "cuda";
  dev.cuda_library = "/nonexistent/libscore_cuda.so";
  CHECK_THROWS(score::Model::init(tiny_config(Arch::GPT2), 1, dev), Device, "cannot load the CUDA backend");
}
