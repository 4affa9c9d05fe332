// The whole CUDA backend against the CPU backend on tiny models of each family:
// log-probabilities, one training step (SFT and RL losses) and generation. Without
// a GPU it checks that asking for one fails cleanly (nullptr + a message), then
// skips the rest with the reason printed.
//
// Tolerances: with fp32 matmuls the two backends differ only in summation order
// (1e-4 on log-probabilities of a 2-layer model; measured on an H200: <= 2e-5).
// With the default bf16 matmuls the inputs of every product are rounded to 8
// significant bits (relative error up to 2^-8). These random-weight models (std 0.3)
// have logits of spread ~4 and log-probabilities down to -15, so a 2^-8 relative error
// of each product input, through two blocks and the lm_head, moves log-probabilities by up to
// ~0.1 (measured on an H200: 0.05 gpt2, 0.12 llama, 0.10 qwen2): 0.25 abs, and the
// losses built from them (and their KL terms against a fixed reference) by a few
// percent: 8% relative.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

#include "check.h"

#ifndef SCORE_HAVE_CUDA
int main() {
  std::printf("skipped: this build has no CUDA backend (nvcc not found or SCORE_CUDA=off)\n");
  return 0;
}
#else
#include <cuda_runtime_api.h>

#include <cmath>

#include "cuda/backend.h"
#include "model_util.h"
#include "score/backend.h"
#include "score/errors.h"

using namespace score;
using namespace score_test;

namespace {

// A small config per family, larger than tiny_config so that products span several tiles.
ModelConfig small_config(Arch arch) {
  ModelConfig c = tiny_config(arch);
  c.vocab_size = 301;
  c.d_model = 64;
  c.head_dim = 16;
  c.n_head = 4;
  c.n_kv_head = arch == Arch::GPT2 ? 4 : 2;
  c.d_ff = 96;
  c.max_pos = 48;
  return c;
}

struct Pair {
  std::unique_ptr<Backend> cpu, gpu;
  std::vector<float> params;
};
Pair make_pair(const ModelConfig& cfg, cuda::MatmulPrecision prec, uint64_t seed, bool lt = true,
               cuda::AttentionKind attn = cuda::AttentionKind::Auto) {
  Pair p;
  ParamLayout layout(cfg);
  p.params.resize(layout.numel());
  randomize(p.params, layout, seed);
  p.cpu = create_cpu_backend(cfg, true);
  cuda::Options opt;
  opt.matmul = prec;
  opt.cublaslt = lt;
  opt.attention = attn;
  p.gpu = cuda::create_backend(cfg, true, opt);
  p.cpu->set_params(p.params.data());
  p.gpu->set_params(p.params.data());
  return p;
}

struct Data {
  int B = 3, T = 20;
  std::vector<int32_t> tokens, lengths;
  std::vector<float> weight, wpg, adv, wkl, ref, old;
};
Data make_data(int V, uint64_t seed) {
  Data d;
  Rng rng(seed);
  d.lengths = {20, 13, 2};
  for (int i = 0; i < d.B * d.T; i++) d.tokens.push_back(int32_t(rng.next_u64() % V));
  const size_t S = size_t(d.B) * (d.T - 1);
  for (size_t i = 0; i < S; i++) {
    d.weight.push_back(float(0.5 + rng.uniform()));
    d.wpg.push_back(float(rng.uniform()));
    d.adv.push_back(float(rng.normal()));
    d.wkl.push_back(float(0.1 * rng.uniform()));
    d.ref.push_back(float(-5 - rng.uniform()));
    d.old.push_back(float(-5 - rng.uniform()));
  }
  return d;
}

const char* attn_name(cuda::AttentionKind a) {
  return a == cuda::AttentionKind::Flash ? " flash" : a == cuda::AttentionKind::Materialising ? " materialising" : "";
}

void compare_logprobs(Arch arch, cuda::MatmulPrecision prec, double tol, bool lt = true,
                      cuda::AttentionKind attn = cuda::AttentionKind::Auto) {
  const ModelConfig cfg = small_config(arch);
  Pair p = make_pair(cfg, prec, 11, lt, attn);
  Data d = make_data(cfg.vocab_size, 12);
  TokenBatch b{d.tokens.data(), d.lengths.data(), d.B, d.T};
  const size_t S = size_t(d.B) * (d.T - 1);
  std::vector<float> lc(S), ec(S), lg(S), eg(S);
  p.cpu->logprobs(b, lc.data(), ec.data());
  p.gpu->logprobs(b, lg.data(), eg.data());
  double w = 0;
  for (size_t i = 0; i < S; i++) {
    w = std::max(w, std::fabs(double(lc[i]) - lg[i]));
    CHECK_NEAR(lg[i], lc[i], tol, 0.0);
    CHECK_NEAR(eg[i], ec[i], tol, 0.0);
  }
  std::printf("  %s %s%s%s: max |dlogp| %.2e\n", arch_name(arch),
              prec == cuda::MatmulPrecision::BF16 ? "bf16" : "fp32",
              prec == cuda::MatmulPrecision::BF16 && lt && cuda::LtMatmul::available() ? " (cuBLASLt)" : "",
              attn_name(attn), w);
}

// Per-tensor relative step distances (compare_step). float32: the CPU's sums in another
// order; measured <= 1.7e-4 (emulated device), the worst on small bias / norm tensors
// whose gradients are sums with cancellation. bf16: operands rounded to 8 bits
// (2^-8 relative each) through two layers; measured <= 0.084 (emulated, our kernel), 3x
// that for cuBLASLt's other summation order. A gradient computed from a stale operand
// (the residual gradient's bf16 copy of the layer above, a planted bug) measured 0.87.
constexpr double kTensorFp32 = 1e-3, kTensorBf16 = 0.25;

// One loss_backward + optimizer_step on both backends. With eps = 1 and lr = 1e-2 the
// first AdamW step moves each weight by lr * g / (|g| + 1), a smooth function of the
// gradient, so comparing the moved weights compares the gradients.
void compare_step(Arch arch, bool rl, cuda::MatmulPrecision prec, double tol, double rel_tol,
                  cuda::AttentionKind attn = cuda::AttentionKind::Auto) {
  const ModelConfig cfg = small_config(arch);
  Pair p = make_pair(cfg, prec, 21, true, attn);
  Data d = make_data(cfg.vocab_size, 22);
  TokenBatch b{d.tokens.data(), d.lengths.data(), d.B, d.T};
  TokenLoss l;
  l.weight = d.weight.data();
  l.norm = 17;
  if (rl) {
    l.rl = true, l.w_pg = d.wpg.data(), l.adv = d.adv.data(), l.w_kl = d.wkl.data();
    l.ref_logp = d.ref.data(), l.old_logp = d.old.data(), l.kl = KlEstimator::K3, l.clip_eps = 0.2;
  }
  const LossStats sc = p.cpu->loss_backward(b, l), sg = p.gpu->loss_backward(b, l);
  CHECK_NEAR(sg.loss, sc.loss, tol, tol);
  CHECK_NEAR(sg.pg_loss, sc.pg_loss, tol, tol);
  CHECK_NEAR(sg.kl_loss, sc.kl_loss, tol, tol);
  CHECK_NEAR(sg.entropy_mean, sc.entropy_mean, tol, tol);
  CHECK_NEAR(sg.clip_frac, sc.clip_frac, 0.05, 0.0);  // a token may sit on the clip boundary
  CHECK(sg.tokens == sc.tokens);
  CHECK_NEAR(sg.weight_sum, sc.weight_sum, 1e-9, 1e-9);
  AdamWConfig opt;
  opt.lr = 1e-2f, opt.eps = 1.0f, opt.weight_decay = 0.1f, opt.max_grad_norm = 1.0f;
  const StepStats tc = p.cpu->optimizer_step(opt), tg = p.gpu->optimizer_step(opt);
  CHECK_NEAR(tg.grad_norm, tc.grad_norm, 0.0, 10 * tol);
  CHECK(tg.step == 1 && tc.step == 1);
  std::vector<float> pc(p.params.size()), pg(p.params.size());
  p.cpu->get_params(pc.data());
  p.gpu->get_params(pg.data());
  double worst = 0;
  for (size_t i = 0; i < pc.size(); i++)
    worst = std::max(worst, std::fabs(double(pc[i] - p.params[i]) - double(pg[i] - p.params[i])));
  CHECK(worst <= 1e-2 * 10 * tol);  // step sizes agree to 10 tol of lr
  // Per tensor, the relative distance of the steps: |step_gpu - step_cpu| / |step_cpu|
  // (2-norms). A gradient that reads a wrong or stale operand moves one tensor by O(1)
  // while the largest per-element difference above can stay small.
  double worst_rel = 0;
  std::string worst_name;
  const ParamLayout layout(cfg);
  for (const TensorSpec& t : layout.tensors()) {
    double dd = 0, nn = 0;
    for (size_t i = t.offset; i < t.offset + t.numel; i++) {
      const double sc_ = double(pc[i]) - p.params[i], sg_ = double(pg[i]) - p.params[i];
      dd += (sg_ - sc_) * (sg_ - sc_), nn += sc_ * sc_;
    }
    const double rel = nn > 0 ? std::sqrt(dd / nn) : std::sqrt(dd);
    if (rel > worst_rel) worst_rel = rel, worst_name = t.name;
  }
  CHECK(worst_rel <= rel_tol);
  std::printf("  %s %s %s%s: loss %.6f vs %.6f, |g| %.6f vs %.6f, worst step diff %.2e, "
              "worst tensor %.2e (%s)\n",
              arch_name(arch), rl ? "rl" : "sft", prec == cuda::MatmulPrecision::BF16 ? "bf16" : "fp32",
              attn_name(attn), sg.loss, sc.loss, tg.grad_norm, tc.grad_norm, worst, worst_rel,
              worst_name.c_str());
}

// Three prompts, two samples each, up to 12 new tokens; top-k 50 and top-p 0.9 when
// sampling.
GenerateRequest request(double temperature, int eos, uint64_t seed) {
  GenerateRequest r;
  r.prompts = {{1, 2, 3}, {4}, {5, 6, 7, 8, 9}};
  r.n = 2;
  r.max_new_tokens = 12;
  r.temperature = temperature;
  r.top_k = temperature > 0 ? 50 : 0;
  r.top_p = temperature > 0 ? 0.9 : 1.0;
  r.seed = seed;
  r.eos_id = eos;
  return r;
}
GenerateResult gen(Backend& b, double temperature, int V) { return b.generate(request(temperature, V - 1, 5)); }

}  // namespace

TEST(logprobs_fp32_matches_cpu) {
  for (Arch a : {Arch::GPT2, Arch::Llama, Arch::Qwen2}) compare_logprobs(a, cuda::MatmulPrecision::FP32, 1e-4);
}
TEST(logprobs_bf16_near_cpu) {
  for (Arch a : {Arch::GPT2, Arch::Llama, Arch::Qwen2}) {
    compare_logprobs(a, cuda::MatmulPrecision::BF16, 0.25);  // cuBLASLt where built with it
    if (cuda::LtMatmul::available()) compare_logprobs(a, cuda::MatmulPrecision::BF16, 0.25, false);
  }
}
TEST(train_step_fp32_matches_cpu) {
  for (Arch a : {Arch::GPT2, Arch::Llama, Arch::Qwen2})
    for (bool rl : {false, true}) compare_step(a, rl, cuda::MatmulPrecision::FP32, 1e-4, kTensorFp32);
}
TEST(train_step_bf16_near_cpu) {
  for (Arch a : {Arch::GPT2, Arch::Llama})
    for (bool rl : {false, true}) compare_step(a, rl, cuda::MatmulPrecision::BF16, 8e-2, kTensorBf16);
}
// The fused attention (attention_flash.cu, SCORE_CUDA_ATTENTION=flash) inside the whole
// model, with the tolerances of the materialising runs above: it computes the same
// function, so the fp32 path matches the CPU to float rounding and the bf16 path stays
// within the bf16 budget.
TEST(flash_attention_model_matches_cpu) {
  const auto flash = cuda::AttentionKind::Flash;
  for (Arch a : {Arch::GPT2, Arch::Llama, Arch::Qwen2}) {
    compare_logprobs(a, cuda::MatmulPrecision::FP32, 1e-4, true, flash);
    compare_step(a, true, cuda::MatmulPrecision::FP32, 1e-4, kTensorFp32, flash);
    compare_logprobs(a, cuda::MatmulPrecision::BF16, 0.25, true, flash);
  }
  for (Arch a : {Arch::GPT2, Arch::Llama}) compare_step(a, false, cuda::MatmulPrecision::BF16, 8e-2, kTensorBf16, flash);
}

TEST(generate_matches_cpu) {
  for (Arch a : {Arch::GPT2, Arch::Llama, Arch::Qwen2}) {
    const ModelConfig cfg = small_config(a);
    Pair p = make_pair(cfg, cuda::MatmulPrecision::FP32, 31);
    for (double temp : {0.0, 0.8}) {
      const GenerateResult rc = gen(*p.cpu, temp, cfg.vocab_size), rg = gen(*p.gpu, temp, cfg.vocab_size);
      CHECK(rc.tokens == rg.tokens);  // fp32 logits agree to ~1e-5: identical choices
      for (size_t s = 0; s < rc.logp.size() && rc.tokens == rg.tokens; s++)
        for (size_t i = 0; i < rc.logp[s].size(); i++) {
          CHECK_NEAR(rg.logp[s][i], rc.logp[s][i], 1e-4, 0.0);
          CHECK_NEAR(rg.logp_sampling[s][i], rc.logp_sampling[s][i], 1e-4, 0.0);
        }
      CHECK(rc.finish == rg.finish);
    }
    // bf16: greedy sequences agree where the margins allow; reported, and the first
    // token (a prompt-only forward) must agree for most sequences.
    Pair q = make_pair(cfg, cuda::MatmulPrecision::BF16, 31);
    const GenerateResult rc = gen(*q.cpu, 0, cfg.vocab_size), rg = gen(*q.gpu, 0, cfg.vocab_size);
    int same = 0, first = 0;
    for (size_t s = 0; s < rc.tokens.size(); s++) {
      same += rc.tokens[s] == rg.tokens[s];
      first += rc.tokens[s][0] == rg.tokens[s][0];
    }
    std::printf("  %s bf16 greedy: %d/%zu sequences identical, %d first tokens\n", arch_name(a), same,
                rc.tokens.size(), first);
    CHECK(first >= int(rc.tokens.size()) - 1);
  }
}
// Stochastic sampling on the device (SCORE_CUDA_SAMPLING=device): the host draws the same
// uniforms from the same streams, so with fp32 logits the sampled sequences are those of
// the CPU backend, as with the host sampler above.
TEST(generate_device_sampling_matches_cpu) {
  for (Arch a : {Arch::GPT2, Arch::Llama}) {
    const ModelConfig cfg = small_config(a);
    Pair p = make_pair(cfg, cuda::MatmulPrecision::FP32, 31);
    cuda::Options opt;
    opt.matmul = cuda::MatmulPrecision::FP32;
    opt.sampling = cuda::SamplingKind::Device;
    auto dev = cuda::create_backend(cfg, false, opt);
    dev->set_params(p.params.data());
    for (double temp : {0.8, 1.0}) {
      const GenerateResult rc = gen(*p.cpu, temp, cfg.vocab_size), rg = gen(*dev, temp, cfg.vocab_size);
      CHECK(rc.tokens == rg.tokens);
      for (size_t s = 0; s < rc.logp.size() && rc.tokens == rg.tokens; s++)
        for (size_t i = 0; i < rc.logp[s].size(); i++) {
          CHECK_NEAR(rg.logp[s][i], rc.logp[s][i], 1e-4, 0.0);
          CHECK_NEAR(rg.logp_sampling[s][i], rc.logp_sampling[s][i], 1e-4, 0.0);
        }
      CHECK(rc.finish == rg.finish);
    }
  }
}

// Decoding as CUDA graphs (DecodeKind::Graph: every sequence's row each step, finished
// ones as stand-ins; the step captured once and relaunched) against eager decoding: the
// same tokens, log-probs and finish reasons, bit for bit where each row's arithmetic does
// not depend on how many rows there are (float32, and our bf16 kernel; cuBLASLt may pick
// other kernels for other row counts, so there only the tokens are compared). The EOS
// token is one that sequence 0 emits early, so that sequences finish at different steps
// and the graph runs with stand-in rows.
TEST(generate_graph_matches_eager) {
  struct Case {
    cuda::MatmulPrecision prec;
    bool lt;
    cuda::SamplingKind sampling;
    double temperature;
  };
  const auto F = cuda::MatmulPrecision::FP32, B = cuda::MatmulPrecision::BF16;
  for (Arch a : {Arch::GPT2, Arch::Llama})
    for (const Case c : {Case{F, false, cuda::SamplingKind::Device, 0.0}, Case{F, false, cuda::SamplingKind::Device, 0.8},
                         Case{F, false, cuda::SamplingKind::Host, 0.8}, Case{B, false, cuda::SamplingKind::Device, 0.8},
                         Case{B, true, cuda::SamplingKind::Device, 0.0}}) {
      const ModelConfig cfg = small_config(a);
      ParamLayout layout(cfg);
      std::vector<float> params(layout.numel());
      randomize(params, layout, 41);
      cuda::Options opt;
      opt.matmul = c.prec, opt.cublaslt = c.lt, opt.sampling = c.sampling;
      opt.decode = cuda::DecodeKind::Eager;
      auto eager = cuda::create_backend(cfg, false, opt);
      opt.decode = cuda::DecodeKind::Graph;
      auto graph = cuda::create_backend(cfg, false, opt);
      eager->set_params(params.data());
      graph->set_params(params.data());
      const int eos = eager->generate(request(c.temperature, -1, 7)).tokens[0][2];
      const GenerateResult re = eager->generate(request(c.temperature, eos, 7));
      const GenerateResult rg = graph->generate(request(c.temperature, eos, 7));
      size_t shortest = 99, longest = 0;
      for (const auto& t : re.tokens) shortest = std::min(shortest, t.size()), longest = std::max(longest, t.size());
      CHECK(shortest < longest);  // stand-in rows were used
      if (c.lt && cuda::LtMatmul::available()) {
        int same = 0;
        for (size_t s = 0; s < re.tokens.size(); s++) same += re.tokens[s] == rg.tokens[s];
        std::printf("  %s bf16 cuBLASLt graph vs eager: %d/%zu sequences identical\n", arch_name(a), same,
                    re.tokens.size());
        CHECK(same >= int(re.tokens.size()) - 1);
        continue;
      }
      CHECK(re.tokens == rg.tokens);
      CHECK(re.logp == rg.logp);
      CHECK(re.logp_sampling == rg.logp_sampling);
      CHECK(re.finish == rg.finish);
      CHECK(re.steps == rg.steps);
    }
}

// A non-finite gradient norm skips the step on the device, as on the CPU: weights, their
// bf16 copy and the moments untouched, the step count kept, the gradients dropped (the
// next step's norm is the clean one's).
TEST(poisoned_step_skipped) {
  for (auto prec : {cuda::MatmulPrecision::FP32, cuda::MatmulPrecision::BF16}) {
    const ModelConfig cfg = small_config(Arch::GPT2);
    Pair p = make_pair(cfg, prec, 51);
    Data d = make_data(cfg.vocab_size, 52);
    TokenBatch b{d.tokens.data(), d.lengths.data(), d.B, d.T};
    const size_t S = size_t(d.B) * (d.T - 1);
    std::vector<float> before(S), after(S);
    p.gpu->logprobs(b, before.data(), nullptr);
    std::vector<float> poisoned = d.weight;
    poisoned[3] = NAN;
    TokenLoss l;
    l.weight = poisoned.data();
    l.norm = 17;
    AdamWConfig opt;
    opt.lr = 1e-2f, opt.weight_decay = 0.1f, opt.max_grad_norm = 1.0f;
    p.gpu->loss_backward(b, l);
    const StepStats bad = p.gpu->optimizer_step(opt);
    CHECK(bad.skipped && bad.step == 0 && !std::isfinite(bad.grad_norm));
    std::vector<float> w(p.params.size());
    p.gpu->get_params(w.data());
    CHECK(w == p.params);
    p.gpu->logprobs(b, after.data(), nullptr);
    CHECK(after == before);  // the products' bf16 weights too
    l.weight = d.weight.data();
    p.cpu->loss_backward(b, l);
    p.gpu->loss_backward(b, l);
    const StepStats tc = p.cpu->optimizer_step(opt), tg = p.gpu->optimizer_step(opt);
    CHECK(!tg.skipped && tg.step == 1);
    // compare_step's tolerances: fp32 the CPU's sums in another order, bf16 the rounding.
    const double tol = prec == cuda::MatmulPrecision::FP32 ? 1e-3 : 8e-2;
    CHECK_NEAR(tg.grad_norm, tc.grad_norm, 0.0, tol);
    CHECK_NEAR(tg.clip_scale, tc.clip_scale, 0.0, tol);
    std::printf("  %s: poisoned step skipped; next |g| %.6f vs %.6f, clip %.6f vs %.6f\n",
                prec == cuda::MatmulPrecision::BF16 ? "bf16" : "fp32", tg.grad_norm, tc.grad_norm,
                tg.clip_scale, tc.clip_scale);
  }
}

TEST(clone_and_optimizer_state) {
  const ModelConfig cfg = small_config(Arch::Llama);
  Pair p = make_pair(cfg, cuda::MatmulPrecision::FP32, 41);
  auto c = p.gpu->clone(false);
  std::vector<float> a(p.params.size()), m(a.size()), v(a.size());
  c->get_params(a.data());
  CHECK(a == p.params);
  CHECK_THROWS(c->get_optimizer_state(m.data(), v.data()), InvalidArgument, "frozen");
  CHECK(p.gpu->get_optimizer_state(m.data(), v.data()) == 0);
  std::vector<float> m2(a.size(), 0.25f), v2(a.size(), 0.5f);
  p.gpu->set_optimizer_state(m2.data(), v2.data(), 7);
  CHECK(p.gpu->get_optimizer_state(m.data(), v.data()) == 7);
  CHECK(m == m2 && v == v2);
  CHECK(p.gpu->memory_use().total() > 0);
}

static void run_all(int& passed, int& failed) {
  for (auto& c : score_test::registry()) {
    const int before = score_test::failures();
    try {
      c.fn();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "  %s: unexpected exception: %s\n", c.name, e.what());
      score_test::failures()++;
    }
    const bool ok = score_test::failures() == before;
    std::printf("%s %s\n", ok ? "ok  " : "FAIL", c.name);
    (ok ? passed : failed)++;
  }
}

// The switches (no device needed): SCORE_CUDA_ATTENTION, SCORE_CUDA_SAMPLING and
// SCORE_CUDA_DECODE pick the kernel or mode when the options say Auto (unset or empty:
// the default); an explicit choice wins; a misspelt value is an error naming the accepted
// ones.
static bool check_switches() {
  // fn() with the variable set to value (nullptr: unset), restored after.
  auto with_env = [](const char* name, const char* value, auto&& fn) {
    const char* saved = std::getenv(name);
    const std::string keep = saved ? saved : "";
    if (value) setenv(name, value, 1); else unsetenv(name);
    const bool r = fn();
    if (saved) setenv(name, keep.c_str(), 1); else unsetenv(name);
    return r;
  };
  // resolve(Auto) under each value gives the expected kind; a bad value is refused.
  auto check = [&](const char* name, auto resolve, auto auto_kind, auto explicit_kind,
                   std::initializer_list<std::pair<const char*, decltype(auto_kind)>> want,
                   const char* bad, const char* named) {
    bool ok = resolve(explicit_kind) == explicit_kind;
    for (const auto& [value, kind] : want)
      ok = ok && with_env(name, value, [&] { return resolve(auto_kind) == kind; });
    return ok && with_env(name, bad, [&] {
             try {
               resolve(auto_kind);
               return false;
             } catch (const Error& e) {
               return e.code() == ErrorCode::InvalidArgument && std::strstr(e.what(), named) != nullptr;
             }
           });
  };
  using cuda::AttentionKind, cuda::SamplingKind, cuda::DecodeKind;
  const bool ok =
      check("SCORE_CUDA_ATTENTION", cuda::resolve_attention, AttentionKind::Auto, AttentionKind::Materialising,
            {{nullptr, AttentionKind::Flash}, {"", AttentionKind::Flash}, {"flash", AttentionKind::Flash},
             {"materialising", AttentionKind::Materialising}},
            "flsh", "flash") &&
      check("SCORE_CUDA_SAMPLING", cuda::resolve_sampling, SamplingKind::Auto, SamplingKind::Host,
            {{nullptr, SamplingKind::Device}, {"device", SamplingKind::Device}, {"host", SamplingKind::Host}},
            "gpu", "device") &&
      check("SCORE_CUDA_DECODE", cuda::resolve_decode, DecodeKind::Auto, DecodeKind::Eager,
            {{nullptr, DecodeKind::Eager}, {"eager", DecodeKind::Eager}, {"graph", DecodeKind::Graph}},
            "graf", "graph");
  std::printf("%s: SCORE_CUDA_ATTENTION, SCORE_CUDA_SAMPLING and SCORE_CUDA_DECODE switches\n", ok ? "ok  " : "FAIL");
  return ok;
}

int main() {
  if (!check_switches()) return 1;
  // The C entry point never throws: without a device it returns nullptr and says why.
  ModelConfig cfg = small_config(Arch::GPT2);
  char err[512] = {0};
  Backend* b = score_cuda_create_backend(&cfg, true, err, sizeof err);
  char desc[256] = {0};
  const bool described = score_cuda_describe_device(0, desc, sizeof desc);
  // No device described => no backend; a described device may still be refused (sm < 80).
  std::printf("%s: score_cuda_describe_device: %s\n", described || !b ? "ok  " : "FAIL", desc);
  if (!described && b) return 1;
  if (!b) {
    const bool named = std::strstr(err, "driver") || std::strstr(err, "device") || std::strstr(err, "sm_");
    std::printf("%s: score_cuda_create_backend failed cleanly: %s\n", named ? "ok  " : "FAIL", err);
    std::printf("skipped: the rest needs a CUDA device\n");
    return named ? 0 : 1;
  }
  delete b;
  int passed = 0, failed = 0;
  run_all(passed, failed);
  std::printf("%d passed, %d failed\n", passed, failed);
  return failed == 0 ? 0 : 1;
}
#endif
