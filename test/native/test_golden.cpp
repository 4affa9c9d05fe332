// Golden tests: logits, per-token log-probabilities, the loss and the gradient
// of every parameter of tiny GPT-2, Llama (GQA, untied) and Qwen2 (q/k/v bias,
// tied; F32 and BF16) checkpoints against float64 PyTorch values made by
// test/fixtures/make_golden.py. The checkpoints go through the real loader.
#define SCORE_TEST_MAIN
#include <cmath>
#include <stdexcept>
#include <string>

#include "check.h"
#include "model_util.h"
#include "score/checkpoint.h"
#include "score/safetensors.h"

using namespace score_test;

static std::vector<double> read_f64(const score::SafetensorsFile& f, const char* name) {
  const score::SafeTensorInfo* t = f.find(name);
  if (!t) throw std::runtime_error(f.path() + ": no tensor " + name);
  if (t->dtype != score::DType::F64) throw std::runtime_error(f.path() + ": " + name + " is not F64");
  std::vector<double> out(t->numel);
  f.read_raw(*t, out.data());
  return out;
}

static void check_golden(const std::string& name) {
  const std::string root = "test/fixtures/";
  score::Checkpoint ck = score::load_checkpoint(root + "models/" + name);
  score::SafetensorsFile g = score::SafetensorsFile::open(root + "golden/" + name + ".safetensors");
  const score::SafeTensorInfo* ti = g.find("tokens");
  CHECK(ti && ti->dtype == score::DType::I32 && ti->shape.size() == 2);
  const int B = static_cast<int>(ti->shape[0]), T = static_cast<int>(ti->shape[1]);
  const int V = ck.config.vocab_size, N = B * T;
  Batch b;
  b.B = B;
  b.T = T;
  b.tokens.resize(N);
  g.read_raw(*ti, b.tokens.data());
  const std::vector<double> mask = read_f64(g, "mask"), logits_ref = read_f64(g, "logits"),
                            logp_ref = read_f64(g, "logp"), loss_ref = read_f64(g, "loss");
  double msum = 0;
  for (double m : mask) msum += m;
  b.pos.resize(N);
  b.target.assign(N, -1);
  b.weight.assign(N, 0.0);
  for (int r = 0; r < B; r++)
    for (int t = 0; t < T; t++) {
      b.pos[r * T + t] = t;
      if (t + 1 < T) {
        b.target[r * T + t] = b.tokens[r * T + t + 1];
        b.weight[r * T + t] = mask[r * (T - 1) + t] / msum;
      }
    }

  score::cpu::Transformer<float> net(ck.config, true);
  net.params = ck.params;
  // Logits: the lm_head applied to the final hidden states.
  const float* hidden = net.forward(b.tokens.data(), b.pos.data(), B, T);
  std::vector<float> logits(size_t(N) * V);
  score::cpu::matmul_forward<float>(logits.data(), hidden, net.lm_head(), nullptr, N,
                                    ck.config.d_model, V);
  // Tolerances: float32 through two blocks with weights of std 0.3 (logits of
  // magnitude ~5-7): each op rounds at ~6e-8 relative and the errors add up
  // along a chain of a few dozen ops; measured: at most 6.5e-7 of the largest
  // logit (2.2e-6 .. 4.7e-6 absolute), so 4e-6 relative keeps a 6x margin. A
  // wrong formula (a missing bias, a transposed weight, the other rotary
  // convention) moves logits by O(1).
  double lmax = 0, lerr = 0;
  for (size_t i = 0; i < logits.size(); i++) {
    lmax = std::max(lmax, std::fabs(logits_ref[i]));
    lerr = std::max(lerr, std::fabs(logits[i] - logits_ref[i]));
  }
  std::printf("  %s: max |logit| %.3g, max logit error %.3g (%.3g relative)\n", name.c_str(), lmax, lerr,
              lerr / lmax);
  CHECK(lerr <= 4e-6 * lmax);

  const double loss = weighted_nll(net, b, true);
  std::printf("  %s: loss %.10g vs %.10g, error %.3g (relative %.3g)\n", name.c_str(), loss, loss_ref[0],
              std::fabs(loss - loss_ref[0]), std::fabs(loss - loss_ref[0]) / std::fabs(loss_ref[0]));
  // The loss is a masked mean of log-probabilities (each off by at most ~2e-6,
  // checked below); measured: at most 7.6e-8 relative, so 1e-6 relative (~5e-6
  // absolute at loss ~5) keeps a 13x margin.
  CHECK_NEAR(loss, loss_ref[0], 0, 1e-6);
  std::vector<float> logp(N);
  score::cpu::classifier_forward_backward<float>(logp.data(), nullptr, nullptr, nullptr, hidden,
                                                 net.lm_head(), b.target.data(), N,
                                                 ck.config.d_model, V, nullptr);
  double perr = 0;
  for (int r = 0; r < B; r++)
    for (int t = 0; t + 1 < T; t++)
      perr = std::max(perr, std::fabs(logp[r * T + t] - logp_ref[r * (T - 1) + t]));
  std::printf("  %s: max log-probability error %.3g\n", name.c_str(), perr);
  CHECK(perr <= 4e-6 * lmax);

  // Gradients of every parameter, in the Hugging Face names and layout.
  const std::vector<float> gref =
      score::load_flat_tensors(root + "golden/" + name + ".grads.safetensors", ck.config);
  CHECK(gref.size() == net.grads.size());
  double gmax = 0, gerr = 0;
  for (size_t i = 0; i < gref.size(); i++) {
    gmax = std::max(gmax, double(std::fabs(gref[i])));
    gerr = std::max(gerr, double(std::fabs(net.grads[i] - gref[i])));
  }
  // Per tensor, so that a wrong small tensor (a bias, a norm weight) is not
  // hidden behind the largest gradient of the model. Measured: at most 1.6e-6 of
  // a tensor's largest entry (9.5e-7 of the model's); 1e-5 keeps a 6x margin.
  double worst_rel = 0;
  std::string worst_name;
  for (const score::TensorSpec& t : net.layout().tensors()) {
    double tmax = 0, terr = 0;
    for (size_t i = t.offset; i < t.offset + t.numel; i++) {
      tmax = std::max(tmax, double(std::fabs(gref[i])));
      terr = std::max(terr, double(std::fabs(net.grads[i] - gref[i])));
    }
    CHECK(tmax > 0);
    if (terr / tmax > worst_rel) worst_rel = terr / tmax, worst_name = t.name;
    if (!(terr <= 1e-5 * tmax))
      std::fprintf(stderr, "  %s: gradient of %s off by %.3g (max |grad| %.3g)\n", name.c_str(), t.name.c_str(),
                   terr, tmax);
    CHECK(terr <= 1e-5 * tmax);
  }
  std::printf("  %s: max |grad| %.3g, max grad error %.3g (%.3g relative); worst tensor %s: %.3g of its "
              "largest entry\n",
              name.c_str(), gmax, gerr, gerr / gmax, worst_name.c_str(), worst_rel);
}

TEST(gpt2_matches_pytorch) { check_golden("gpt2-tiny"); }
TEST(llama_gqa_untied_matches_pytorch) { check_golden("llama-tiny"); }
TEST(qwen2_bias_tied_matches_pytorch) { check_golden("qwen2-tiny"); }
TEST(qwen2_bf16_checkpoint_matches_pytorch) { check_golden("qwen2-tiny-bf16"); }
