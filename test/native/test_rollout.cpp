// Generation with the KV cache and the RL loss:
//  - greedy decoding equals the argmax of a full forward pass recomputed at every
//    step, for every architecture, with ragged prompts in one batch;
//  - returned log-probabilities equal Model::logprobs of the same sequences;
//  - EOS, stop sequences, max tokens, memory budget, cancellation, bad requests;
//  - RL loss gradients (k1, k3, clipping on/off, weights) against finite
//    differences in float64 through the whole model.
#define SCORE_TEST_MAIN
#include <atomic>
#include <cmath>
#include <cstdlib>

#include "check.h"
#include "model_util.h"
#include "score/errors.h"
#include "score/model.h"
#include "score/token_loss.h"

using score::Arch;
using namespace score_test;

// Greedy continuation by recomputing the whole sequence each step (no cache).
static std::vector<int32_t> greedy_reference(score::cpu::Transformer<float>& net, std::vector<int32_t> seq, int steps) {
  const score::ModelConfig& c = net.config();
  std::vector<int32_t> out;
  for (int s = 0; s < steps; s++) {
    const int T = static_cast<int>(seq.size());
    std::vector<int32_t> pos(T);
    for (int t = 0; t < T; t++) pos[t] = t;
    const float* hidden = net.forward(seq.data(), pos.data(), 1, T);
    std::vector<float> logits(c.vocab_size);
    score::cpu::matmul_forward<float>(logits.data(), hidden + size_t(T - 1) * c.d_model, net.lm_head(), nullptr, 1, c.d_model, c.vocab_size);
    int best = 0;
    for (int v = 1; v < c.vocab_size; v++)
      if (logits[v] > logits[best]) best = v;
    out.push_back(best);
    seq.push_back(best);
  }
  return out;
}

static score::ModelConfig gen_config(Arch arch) {
  score::ModelConfig c = tiny_config(arch);
  c.max_pos = 32;
  c.vocab_size = 29;
  return c;
}

static std::unique_ptr<score::Model> random_model(const score::ModelConfig& c, uint64_t seed) {
  auto m = score::Model::init(c, seed);
  std::vector<float> p = m->get_params();
  std::vector<double> d(p.size());
  randomize(d, m->layout(), seed, 0.5);  // peaked distributions: clear argmax margins
  for (size_t i = 0; i < p.size(); i++) p[i] = static_cast<float>(d[i]);
  m->set_params(p);
  return m;
}

TEST(greedy_kv_cache_equals_full_recompute) {
  for (Arch arch : {Arch::GPT2, Arch::Llama, Arch::Qwen2}) {
    const score::ModelConfig c = gen_config(arch);
    auto m = random_model(c, 11);
    score::cpu::Transformer<float> ref(c, false);
    const std::vector<float> p = m->get_params();
    std::copy(p.begin(), p.end(), ref.params.begin());
    score::GenerateRequest req;
    req.prompts = {{1, 2, 3}, {4, 5, 6, 7, 8, 9, 10}, {11}};
    req.max_new_tokens = 12;
    req.temperature = 0;
    score::GenerateResult r = m->generate(req);
    CHECK(r.tokens.size() == 3);
    for (size_t s = 0; s < 3; s++) {
      CHECK(r.tokens[s] == greedy_reference(ref, req.prompts[s], 12));
      CHECK(r.finish[s] == score::FinishReason::Length);
      // returned log-probabilities = log-probabilities of the whole sequence
      std::vector<int32_t> seq = req.prompts[s];
      seq.insert(seq.end(), r.tokens[s].begin(), r.tokens[s].end());
      const int T = static_cast<int>(seq.size());
      std::vector<int32_t> len = {T};
      std::vector<float> lp(T - 1);
      score::TokenBatch b;
      b.tokens = seq.data();
      b.lengths = len.data();
      b.B = 1;
      b.T = T;
      m->logprobs(b, lp.data(), nullptr);
      const size_t P = req.prompts[s].size();
      for (size_t t = 0; t < r.tokens[s].size(); t++) {
        CHECK_NEAR(r.logp[s][t], lp[P - 1 + t], 2e-5, 1e-5);
        CHECK(r.logp_sampling[s][t] == 0.0f);  // greedy: probability 1
      }
    }
  }
}

// The decode steps' packed weights (packed_linear.h) give the hidden states of the plain
// weights: prefill rows and then single decode rows, for every architecture. Only the
// order of float sums differs, so the tolerance is float rounding: 2e-5 of the largest
// hidden value (measured about 1e-6).
TEST(forward_cached_packed_weights_equal_plain) {
  if (!score::cpu::packed_linear_supported()) {
    std::printf("     (no AVX-512F: decode weights are not packed on this CPU; skipped)\n");
    return;
  }
  for (Arch arch : {Arch::GPT2, Arch::Llama, Arch::Qwen2}) {
    const score::ModelConfig c = gen_config(arch);
    auto m = random_model(c, 5);
    score::cpu::Transformer<float> net(c, false);
    const std::vector<float> p = m->get_params();
    std::copy(p.begin(), p.end(), net.params.begin());
    score::cpu::Transformer<float>::DecodeWeights packed;
    net.pack_decode_weights(packed);
    score::cpu::Transformer<float>::KVCache plain_cache, packed_cache;
    net.init_cache(plain_cache, 2, 16);
    net.init_cache(packed_cache, 2, 16);
    // Step 0: both prompts (3 + 2 rows); then 4 steps of one row per sequence.
    std::vector<std::vector<int32_t>> steps_tok = {{1, 2, 3, 4, 5}, {6, 7}, {8, 9}, {10, 11}, {12, 13}};
    std::vector<std::vector<int32_t>> steps_pos = {{0, 1, 2, 0, 1}, {3, 2}, {4, 3}, {5, 4}, {6, 5}};
    std::vector<std::vector<int32_t>> steps_slot = {{0, 0, 0, 1, 1}, {0, 1}, {0, 1}, {0, 1}, {0, 1}};
    for (size_t s = 0; s < steps_tok.size(); s++) {
      const int N = static_cast<int>(steps_tok[s].size());
      const float* h = net.forward_cached(steps_tok[s].data(), steps_pos[s].data(), steps_slot[s].data(), N, plain_cache);
      const std::vector<float> plain(h, h + static_cast<size_t>(N) * c.d_model);
      h = net.forward_cached(steps_tok[s].data(), steps_pos[s].data(), steps_slot[s].data(), N, packed_cache, &packed);
      double maxabs = 0, maxdiff = 0;
      for (size_t i = 0; i < plain.size(); i++) {
        maxabs = std::max(maxabs, std::fabs(static_cast<double>(plain[i])));
        maxdiff = std::max(maxdiff, std::fabs(static_cast<double>(plain[i]) - h[i]));
      }
      CHECK(maxdiff <= 2e-5 * maxabs);
    }
    // The packed lm_head gives the plain logits too.
    const std::vector<float> hid = {0.5f, -1.f, 2.f, 0.25f, -0.75f, 1.5f, -2.f, 1.f};
    std::vector<float> a(c.vocab_size), b(c.vocab_size);
    score::cpu::matmul_forward<float>(a.data(), hid.data(), net.lm_head(), nullptr, 1, c.d_model, c.vocab_size);
    packed.lm_head.forward(b.data(), hid.data(), nullptr, 1);
    for (int v = 0; v < c.vocab_size; v++) CHECK_NEAR(b[v], a[v], 1e-5, 1e-5);
  }
}

// generate() keeps its KV cache and packed weights between calls (GenerateWorkspace):
// requests of other sizes in between, and a training step that changes the weights,
// give what a fresh model gives; the memory held is reported as scratch.
TEST(generation_workspace_reuse_is_invisible) {
  const score::ModelConfig c = gen_config(Arch::Qwen2);
  score::GenerateRequest small, big;
  small.prompts = {{1, 2, 3}, {4}};
  small.n = 2;
  small.max_new_tokens = 5;
  small.temperature = 1.0;
  small.seed = 7;
  big.prompts = {{5, 6, 7, 8, 9, 10, 11}, {12, 13}, {14}};
  big.n = 3;
  big.max_new_tokens = 20;
  big.temperature = 0.8;
  big.seed = 8;
  auto m = random_model(c, 21);
  const size_t scratch0 = m->memory_use().scratch;
  const score::GenerateResult s1 = m->generate(small), b1 = m->generate(big), s2 = m->generate(small);
  CHECK(m->memory_use().scratch > scratch0);
  CHECK(s1.tokens == s2.tokens && s1.logp == s2.logp);
  auto fresh = random_model(c, 21);
  const score::GenerateResult b0 = fresh->generate(big);
  CHECK(b1.tokens == b0.tokens && b1.logp == b0.logp);
  // New weights (as after an optimizer step): the next call packs them again.
  std::vector<float> p = m->get_params();
  for (float& x : p) x *= 0.9f;
  m->set_params(p);
  auto never_generated = random_model(c, 21);
  never_generated->set_params(p);
  const score::GenerateResult s3 = m->generate(small), s0 = never_generated->generate(small);
  CHECK(s3.tokens == s0.tokens && s3.logp == s0.logp);
  CHECK(s3.logp != s1.logp);
  // A batch that does not fit beside the workspace releases it first (here it fits in
  // neither case: SCORE_MEMORY_LIMIT says 1 MiB is available).
  const size_t held = m->memory_use().scratch;
  std::vector<int32_t> seq(20, 3), len = {20};
  std::vector<float> lp(19);
  score::TokenBatch tb;
  tb.tokens = seq.data();
  tb.lengths = len.data();
  tb.B = 1;
  tb.T = 20;
  setenv("SCORE_MEMORY_LIMIT", "1M", 1);
  bool refused = false;
  try {
    m->logprobs(tb, lp.data(), nullptr);
  } catch (const score::Error& e) {
    refused = e.code() == score::ErrorCode::OutOfMemory;
  }
  unsetenv("SCORE_MEMORY_LIMIT");
  CHECK(refused);
  CHECK(m->memory_use().scratch < held);
  m->logprobs(tb, lp.data(), nullptr);  // and without the limit it runs
}

TEST(samples_share_prefill_and_are_reproducible) {
  const score::ModelConfig c = gen_config(Arch::Llama);
  auto m = random_model(c, 12);
  score::GenerateRequest req;
  req.prompts = {{1, 2, 3}, {7}};
  req.n = 4;
  req.max_new_tokens = 8;
  req.temperature = 1.0;
  req.seed = 99;
  score::GenerateResult a = m->generate(req), b = m->generate(req);
  CHECK(a.tokens.size() == 8);
  CHECK(a.tokens == b.tokens);
  bool differ = false;
  for (int j = 1; j < 4; j++) differ = differ || a.tokens[j] != a.tokens[0];
  CHECK(differ);  // four samples of one prompt are not copies
  req.seed = 100;
  CHECK(m->generate(req).tokens != a.tokens);
  // Each sample's log-probabilities match a re-scoring of prompt + sample.
  for (int s = 0; s < 8; s++) {
    std::vector<int32_t> seq = req.prompts[s / 4];
    seq.insert(seq.end(), a.tokens[s].begin(), a.tokens[s].end());
    std::vector<int32_t> len = {static_cast<int32_t>(seq.size())};
    std::vector<float> lp(seq.size() - 1);
    score::TokenBatch tb;
    tb.tokens = seq.data();
    tb.lengths = len.data();
    tb.B = 1;
    tb.T = static_cast<int>(seq.size());
    m->logprobs(tb, lp.data(), nullptr);
    const size_t P = req.prompts[s / 4].size();
    for (size_t t = 0; t < a.tokens[s].size(); t++) CHECK_NEAR(a.logp[s][t], lp[P - 1 + t], 2e-5, 1e-5);
  }
}

TEST(stops_at_eos_stop_sequences_and_context) {
  const score::ModelConfig c = gen_config(Arch::GPT2);
  auto m = random_model(c, 13);
  score::GenerateRequest req;
  req.prompts = {{1, 2, 3}};
  req.temperature = 0;
  req.max_new_tokens = 10;
  const std::vector<int32_t> free_run = m->generate(req).tokens[0];
  req.eos_id = free_run[3];
  score::GenerateResult r = m->generate(req);
  size_t first = 0;
  while (free_run[first] != req.eos_id) first++;
  CHECK(r.tokens[0].size() == first + 1);
  CHECK(r.finish[0] == score::FinishReason::Eos);
  req.eos_id = -1;
  req.stop_sequences = {{free_run[4], free_run[5]}, {28, 28, 28}};
  r = m->generate(req);
  CHECK(r.finish[0] == score::FinishReason::Stop);
  CHECK(r.tokens[0].size() <= 6);
  // A prompt near the end of the context stops with "length" at the last position.
  req.stop_sequences.clear();
  req.prompts = {std::vector<int32_t>(30, 1)};
  r = m->generate(req);
  CHECK(r.tokens[0].size() == 2);
  CHECK(r.finish[0] == score::FinishReason::Length);
}

TEST(memory_budget_cancel_and_bad_requests) {
  auto m = random_model(gen_config(Arch::Qwen2), 14);
  score::GenerateRequest req;
  req.prompts = {{1, 2}};
  req.n = 64;
  req.max_new_tokens = 20;
  req.memory_budget = 1000;
  CHECK_THROWS(m->generate(req), OutOfMemory, "needs");
  req.memory_budget = 0;
  std::atomic<bool> cancel{true};
  req.cancel = &cancel;
  CHECK_THROWS(m->generate(req), Aborted, "aborted");
  req.cancel = nullptr;
  auto bad = [&](auto edit, const char* needle) {
    score::GenerateRequest r = req;
    r.n = 1;
    edit(r);
    CHECK_THROWS(m->generate(r), InvalidArgument, needle);
  };
  bad([](score::GenerateRequest& r) { r.prompts = {{}}; }, "prompts[0] is empty");
  bad([](score::GenerateRequest& r) { r.prompts = {}; }, "no prompts");
  bad([](score::GenerateRequest& r) { r.prompts = {std::vector<int32_t>(32, 1)}; }, "no room to generate");
  bad([](score::GenerateRequest& r) { r.prompts = {{1, 40}}; }, "prompts[0][1] = 40");
  bad([](score::GenerateRequest& r) { r.n = 0; }, "n must be >= 1");
  bad([](score::GenerateRequest& r) { r.temperature = -1; }, "temperature");
  bad([](score::GenerateRequest& r) { r.top_p = 0; }, "topP");
  bad([](score::GenerateRequest& r) { r.top_p = 1.5; }, "topP");
  bad([](score::GenerateRequest& r) { r.top_k = -2; }, "topK");
  bad([](score::GenerateRequest& r) { r.max_new_tokens = 0; }, "maxNewTokens");
  bad([](score::GenerateRequest& r) { r.stop_sequences = {{}}; }, "stop[0] is empty");
}

// A diverged model (non-finite weights -> NaN logits) gives an error, not a crash.
TEST(nan_logits_are_an_error_not_a_crash) {
  auto m = random_model(gen_config(Arch::Llama), 15);
  std::vector<float> p = m->get_params();
  for (float& v : p) v = NAN;
  m->set_params(p);
  score::GenerateRequest req;
  req.prompts = {{1, 2}, {3}};
  req.max_new_tokens = 4;
  CHECK_THROWS(m->generate(req), Numeric, "generate: sequence 0");
}

// ---- RL loss ----

struct RlArrays {
  std::vector<float> w_pg, adv, w_kl, ref, old;
};

// Whole-model gradient of sum_n weight[n] * token_loss(n) in float64 vs central differences.
static void check_rl_gradient(score::KlEstimator kl, double clip_eps, Arch arch) {
  const score::ModelConfig cfg = tiny_config(arch);
  score::cpu::Transformer<double> net(cfg, true);
  randomize(net.params, net.layout(), 21);
  const Batch b = make_batch(cfg.vocab_size, 6, {6, 4}, 5);
  const int N = b.B * b.T;
  score::Rng rng(3);
  RlArrays a;
  for (int n = 0; n < N; n++) {
    a.w_pg.push_back(n % 5 == 0 ? 0.0f : 1.0f);
    a.adv.push_back(static_cast<float>(rng.normal()));
    a.w_kl.push_back(n % 2 ? 0.1f : 0.25f);
    a.ref.push_back(static_cast<float>(-2.5 + rng.normal()));
    a.old.push_back(static_cast<float>(-2.5 + 0.3 * rng.normal()));
  }
  score::TokenLoss loss;
  loss.rl = true;
  loss.w_pg = a.w_pg.data();
  loss.adv = a.adv.data();
  loss.w_kl = a.w_kl.data();
  loss.ref_logp = a.ref.data();
  loss.old_logp = a.old.data();
  loss.kl = kl;
  loss.clip_eps = clip_eps;
  // Here the per-token arrays are indexed by row n directly (the test's own layout).
  auto total = [&](bool grad, int* clipped) {
    const score::ModelConfig& c = net.config();
    const double* hidden = net.forward(b.tokens.data(), b.pos.data(), b.B, b.T);
    std::vector<double> logp(N), dh(grad ? size_t(N) * c.d_model : 0);
    std::function<double(int, double)> coef = [&](int n, double lp) {
      score::TokenLossTerms t = score::token_loss(loss, n, lp);
      if (clipped && t.clipped) (*clipped)++;
      return b.weight[n] * t.dlogp;
    };
    score::cpu::classifier_forward_backward<double>(logp.data(), nullptr, grad ? dh.data() : nullptr,
                                                    grad ? net.lm_head_grad() : nullptr, hidden, net.lm_head(),
                                                    b.target.data(), N, c.d_model, c.vocab_size, grad ? &coef : nullptr);
    if (grad) net.backward(dh.data());
    double L = 0;
    for (int n = 0; n < N; n++)
      if (b.target[n] >= 0) {
        score::TokenLossTerms t = score::token_loss(loss, n, logp[n]);
        L += b.weight[n] * (t.pg + t.kl);
      }
    return L;
  };
  int clipped = 0;
  total(true, &clipped);
  if (clip_eps > 0) CHECK(clipped > 0);  // the test exercises both branches
  const std::vector<double> g = net.grads;
  int bad = 0;
  for (size_t i = 0; i < g.size(); i += 3) {  // every third parameter keeps the test fast
    double& w = net.params[i];
    const double w0 = w, h = 1e-5;
    w = w0 + h;
    const double lp = total(false, nullptr);
    w = w0 - h;
    const double lm = total(false, nullptr);
    w = w0;
    const double fd = (lp - lm) / (2 * h);
    // as in test_model: float64 central differences; a kink of the clipped
    // objective inside [w-h, w+h] is vanishingly unlikely at these margins
    if (std::fabs(fd - g[i]) > 1e-7 + 1e-6 * std::fabs(fd) && bad++ < 3)
      std::fprintf(stderr, "  param %zu: analytic %.10g fd %.10g\n", i, g[i], fd);
  }
  CHECK(bad == 0);
}

TEST(rl_loss_gradients_k1_no_clip) { check_rl_gradient(score::KlEstimator::K1, 0, Arch::GPT2); }
TEST(rl_loss_gradients_k3_no_clip) { check_rl_gradient(score::KlEstimator::K3, 0, Arch::Llama); }
TEST(rl_loss_gradients_k1_clip) { check_rl_gradient(score::KlEstimator::K1, 0.2, Arch::Qwen2); }
TEST(rl_loss_gradients_k3_clip) { check_rl_gradient(score::KlEstimator::K3, 0.2, Arch::GPT2); }

// Per-token values against the formulas written out independently.
TEST(token_loss_values) {
  float wpg = 1, A = 2, wkl = 0.5, ref = -1.0f, old = -1.2f;
  score::TokenLoss l;
  l.rl = true;
  l.w_pg = &wpg;
  l.adv = &A;
  l.w_kl = &wkl;
  l.ref_logp = &ref;
  l.old_logp = &old;
  const double lp = -1.5;
  score::TokenLossTerms t = score::token_loss(l, 0, lp);
  CHECK_NEAR(t.pg, -2 * lp, 1e-12, 0);
  CHECK_NEAR(t.kl, 0.5 * (lp - ref), 1e-7, 0);
  l.kl = score::KlEstimator::K3;
  t = score::token_loss(l, 0, lp);
  const double d = ref - lp;
  CHECK_NEAR(t.kl_raw, std::exp(d) - d - 1, 1e-7, 0);
  CHECK(t.kl_raw >= 0);
  l.clip_eps = 0.1;  // ratio exp(-1.5 + 1.2) = 0.74 < 0.9, A > 0: min picks r A, unclipped
  t = score::token_loss(l, 0, lp);
  CHECK(!t.clipped);
  CHECK_NEAR(t.pg, -2 * std::exp(lp - old), 1e-7, 0);
  A = -2;  // A < 0: min(rA, clip(r)A) = clip(r) A = 0.9 * -2: clipped, no gradient from pg
  t = score::token_loss(l, 0, lp);
  CHECK(t.clipped);
  CHECK_NEAR(t.pg, 0.9 * 2, 1e-7, 0);
}

// A bandit: rewarding one completion with repeated rlStep + optimizer_step raises its
// probability; the KL term alone pulls a perturbed policy back toward the reference.
TEST(bandit_and_kl_pull) {
  const score::ModelConfig c = gen_config(Arch::GPT2);
  auto m = score::Model::init(c, 5);
  std::vector<int32_t> good = {1, 2, 7}, bad = {1, 2, 9}, len = {3};
  auto logp_of = [&](std::vector<int32_t>& seq) {
    std::vector<float> lp(2);
    score::TokenBatch b{seq.data(), len.data(), 1, 3};
    m->logprobs(b, lp.data(), nullptr);
    return lp[1];
  };
  const float before = logp_of(good);
  std::vector<float> mask = {0, 1}, wpg = {0, 1}, adv_good = {0, 1}, adv_bad = {0, -1};
  score::AdamWConfig opt;
  opt.lr = 1e-2f;
  for (int i = 0; i < 20; i++) {
    for (auto* seq : {&good, &bad}) {
      score::TokenLoss l;
      l.weight = mask.data();
      l.w_pg = wpg.data();
      l.adv = seq == &good ? adv_good.data() : adv_bad.data();
      l.norm = 2;
      score::TokenBatch b{seq->data(), len.data(), 1, 3};
      m->rl_backward(b, l);
    }
    m->optimizer_step(opt);
  }
  CHECK(logp_of(good) > before + 1.0f);
  CHECK(logp_of(bad) < logp_of(good));

  // KL pull: reference = a fresh model; the policy is moved away, then trained on KL only.
  auto ref = score::Model::init(c, 6);
  auto pol = ref->clone(true);
  std::vector<float> p = pol->get_params();
  score::Rng rng(1);
  for (float& v : p) v += static_cast<float>(0.05 * rng.normal());
  pol->set_params(p);
  std::vector<int32_t> seqs = {1, 4, 6, 8, 10, 12, 3, 5, 7, 9, 11, 13}, lens = {6, 6};
  score::TokenBatch b{seqs.data(), lens.data(), 2, 6};
  std::vector<float> ref_lp(10), ones(10, 1.0f), wkl(10, 1.0f);
  ref->logprobs(b, ref_lp.data(), nullptr);
  double first = 0, last = 0;
  for (int i = 0; i < 30; i++) {
    score::TokenLoss l;
    l.weight = ones.data();
    l.w_kl = wkl.data();
    l.ref_logp = ref_lp.data();
    l.kl = score::KlEstimator::K3;
    l.norm = 10;
    score::LossStats st = pol->rl_backward(b, l);
    if (i == 0) first = st.kl_mean;
    last = st.kl_mean;
    pol->optimizer_step(opt);
  }
  CHECK(first > 0);
  CHECK(last < 0.3 * first);
}
