// GPU benchmarks of the CUDA backend (run by bench/gpu/check.sh beside the PyTorch
// peer, bench/gpu/torch_peer.py). Prints "RESULT <key> <value>" lines:
//  - our bf16 tensor-core GEMM at the gpt2 preset's shapes (TFLOP/s), all three
//    linear-layer layouts;
//  - a training step of the gpt2 preset (124M; B x 1024 tokens, bf16 matmuls):
//    tokens/s and MFU = (6 N + 12 L T C) * tokens/s / peak, N = all parameters
//    (the tied wte is the lm_head product), peak = the card's dense bf16 peak;
//  - greedy KV-cache generation at batch 64 and 256 (tokens/s), and sampled generation
//    at batch 64 with the host sampler and with the device sampler;
//  - attention alone at the training step's shape (8 x 1024, 12 heads of 64), bf16:
//    the materialising kernel (attention.cu) and the fused one (attention_flash.cu).
// The training step uses the attention kernel SCORE_CUDA_ATTENTION selects (flash by
// default); with "materialising" its keys are train_materialising_* and
// materialising_logprobs_ms.
// Usage: bench_cuda [train_batch=8] [prompt=64] [new_tokens=128] [train|profile]
//   (a 4th argument "train": the training step and log-probs only; "profile": the GPU
//   time per kernel of the training step and of greedy generation at batch 64, through
//   CUPTI)
#include <cuda_runtime_api.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "cuda/attention_flash.h"
#include "cuda/backend.h"
#include "cuda/common.h"
#include "cuda/kernels.h"
#include "kernel_profile.h"
#include "score/params.h"
#include "score/rng.h"

using namespace score;
namespace cu = score::cuda;

namespace {

double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

ModelConfig gpt2_124m() {
  ModelConfig c;
  c.arch = Arch::GPT2;
  c.vocab_size = 50257, c.n_layer = 12, c.d_model = 768, c.n_head = 12, c.n_kv_head = 12;
  c.head_dim = 64, c.d_ff = 3072, c.max_pos = 1024, c.norm_eps = 1e-5;
  c.qkv_bias = true, c.o_bias = true, c.tie_embeddings = true;
  return c;
}

// Random weights at GPT-2's scale: LayerNorm weights 1, every other tensor (biases too) N(0, 0.02).
std::vector<float> gpt2_init(const ParamLayout& layout, Rng& rng) {
  std::vector<float> params(layout.numel());
  for (const TensorSpec& t : layout.tensors()) {
    const bool ln_w = t.name.find("ln") != std::string::npos && t.name.back() == 'w';
    for (size_t i = 0; i < t.numel; i++) params[t.offset + i] = ln_w ? 1.0f : float(0.02 * rng.normal());
  }
  return params;
}

double peak_bf16(const cudaDeviceProp& p) {
  const std::string n = p.name;
  if (n.find("H100") != std::string::npos || n.find("H200") != std::string::npos ||
      n.find("H800") != std::string::npos || n.find("GH200") != std::string::npos)
    return n.find("PCIe") != std::string::npos ? 756e12 : 989e12;
  if (n.find("A100") != std::string::npos || n.find("A800") != std::string::npos) return 312e12;
  return 0;
}

void bench_gemm() {
  struct Shape {
    const char* name;
    int M, N, K;
    bool ak, bn;
  };
  const int T = 8192;  // B*T rows of a training step
  const Shape shapes[] = {
      {"fwd_qkv_8192x2304x768", T, 2304, 768, true, false},
      {"fwd_fc_8192x3072x768", T, 3072, 768, true, false},
      {"fwd_proj_8192x768x3072", T, 768, 3072, true, false},
      {"fwd_lmhead_1335x50257x768", 1335, 50257, 768, true, false},
      {"bwd_dinp_8192x768x3072", T, 768, 3072, true, true},
      {"bwd_dw_3072x768x8192", 3072, 768, T, false, true},
      {"bwd_dw_768x768x8192", 768, 768, T, false, true},
  };
  std::unique_ptr<cu::LtMatmul> lt = cu::LtMatmul::create();
  // TFLOP/s of 20 runs of `run` after a warm-up (events on the default stream).
  auto tflops = [](const Shape& s, auto&& run) {
    run();
    SCORE_CUDA_CHECK(cudaDeviceSynchronize());
    cudaEvent_t e0, e1;
    cudaEventCreate(&e0), cudaEventCreate(&e1);
    const int iters = 20;
    cudaEventRecord(e0);
    for (int i = 0; i < iters; i++) run();
    cudaEventRecord(e1);
    SCORE_CUDA_CHECK(cudaEventSynchronize(e1));
    float ms = 0;
    cudaEventElapsedTime(&ms, e0, e1);
    cudaEventDestroy(e0), cudaEventDestroy(e1);
    return 2.0 * s.M * s.N * s.K * iters / (ms * 1e-3) / 1e12;
  };
  for (const Shape& s : shapes) {
    // bf16 operands in memory, as the model passes them to both our kernel and cuBLASLt
    // (the producers write bf16 copies); float32 output.
    const size_t na = size_t(s.M) * s.K, nb = size_t(s.K) * s.N, nc = size_t(s.M) * s.N;
    cu::DeviceBuffer<uint16_t> A, B;
    cu::DeviceBuffer<float> C;
    A.ensure(na), B.ensure(nb), C.ensure(nc);
    SCORE_CUDA_CHECK(cudaMemset(A.get(), 0, na * 2));
    SCORE_CUDA_CHECK(cudaMemset(B.get(), 0, nb * 2));
    cu::Gemm g;
    g.A16 = A.get(), g.lda = s.ak ? s.K : s.M, g.a_kcontig = s.ak;
    g.B16 = B.get(), g.ldb = s.bn ? s.N : s.K, g.b_ncontig = s.bn;
    g.C = C.get(), g.ldc = s.N, g.M = s.M, g.N = s.N, g.K = s.K;
    g.accumulate = !s.ak;  // the weight-gradient form accumulates (and may split K)
    std::printf("RESULT gemm_%s_tflops %.1f\n", s.name,
                tflops(s, [&] { cu::gemm(g, cu::MatmulPrecision::BF16, nullptr); }));
    std::fflush(stdout);
    if (lt && lt->run(g, nullptr))  // the same product through cuBLASLt (an odd N: split)
      std::printf("RESULT gemm_%s_lt_tflops %.1f\n", s.name, tflops(s, [&] { lt->run(g, nullptr); }));
  }
}

// Forward + backward of attention alone, bf16, both kernels (events around 10 runs).
void bench_attention(int B) {
  const int T = 1024, H = 12, hd = 64, QKV = 3 * H * hd, Q = H * hd;
  const size_t nqkv = size_t(B) * T * QKV, nq = size_t(B) * T * Q, natt = size_t(B) * H * T * T;
  cu::DeviceBuffer<float> qkv, dqkv, out, dout, att, scratch;
  std::vector<float> h(nqkv);
  Rng rng(3);
  for (auto& x : h) x = float(rng.normal());
  SCORE_CUDA_CHECK(cudaMemcpy(qkv.ensure(nqkv), h.data(), nqkv * 4, cudaMemcpyHostToDevice));
  SCORE_CUDA_CHECK(cudaMemcpy(dout.ensure(nq), h.data(), nq * 4, cudaMemcpyHostToDevice));
  dqkv.ensure(nqkv), out.ensure(nq);
  SCORE_CUDA_CHECK(cudaMemset(dqkv.get(), 0, nqkv * 4));
  const auto bf = cu::MatmulPrecision::BF16;
  for (bool flash : {false, true}) {
    att.ensure(flash ? size_t(B) * H * T : natt), scratch.ensure(flash ? size_t(B) * H * T : natt);
    auto fwd = [&] {
      if (flash) cu::flash_attention_forward(out.get(), att.get(), qkv.get(), B, T, H, H, hd, bf, nullptr);
      else cu::attention_forward(out.get(), att.get(), qkv.get(), B, T, H, H, hd, bf, nullptr);
    };
    auto bwd = [&] {
      if (flash)
        cu::flash_attention_backward(dqkv.get(), scratch.get(), dout.get(), qkv.get(), out.get(), att.get(), B, T,
                                     H, H, hd, bf, nullptr);
      else cu::attention_backward(dqkv.get(), scratch.get(), dout.get(), qkv.get(), att.get(), B, T, H, H, hd, bf, nullptr);
    };
    fwd(), bwd();
    SCORE_CUDA_CHECK(cudaDeviceSynchronize());
    cudaEvent_t e0, e1, e2;
    SCORE_CUDA_CHECK(cudaEventCreate(&e0));
    SCORE_CUDA_CHECK(cudaEventCreate(&e1));
    SCORE_CUDA_CHECK(cudaEventCreate(&e2));
    const int iters = 10;
    SCORE_CUDA_CHECK(cudaEventRecord(e0));
    for (int i = 0; i < iters; i++) fwd();
    SCORE_CUDA_CHECK(cudaEventRecord(e1));
    for (int i = 0; i < iters; i++) bwd();
    SCORE_CUDA_CHECK(cudaEventRecord(e2));
    SCORE_CUDA_CHECK(cudaEventSynchronize(e2));
    float f_ms = 0, b_ms = 0;
    SCORE_CUDA_CHECK(cudaEventElapsedTime(&f_ms, e0, e1));
    SCORE_CUDA_CHECK(cudaEventElapsedTime(&b_ms, e1, e2));
    const char* k = flash ? "flash" : "materialising";
    std::printf("RESULT attn_%s_fwd_ms %.3f\n", k, f_ms / iters);
    std::printf("RESULT attn_%s_bwd_ms %.3f\n", k, b_ms / iters);
    std::fflush(stdout);
    cudaEventDestroy(e0), cudaEventDestroy(e1), cudaEventDestroy(e2);
    att.release(), scratch.release();
  }
}

// A gpt2 124M model (random GPT-2-like init) with a next-token training batch of
// B x 1024 random tokens.
struct TrainRig {
  ModelConfig cfg = gpt2_124m();
  ParamLayout layout{cfg};
  std::unique_ptr<Backend> be;
  std::vector<int32_t> tokens, lengths;
  std::vector<float> weight;
  TokenBatch batch;
  TokenLoss loss;
  AdamWConfig opt;
  TrainRig(int B, bool cublaslt) {
    const int T = 1024;
    Rng rng(1);
    const std::vector<float> params = gpt2_init(layout, rng);
    cu::Options o;
    o.cublaslt = cublaslt;
    be = cu::create_backend(cfg, true, o);
    be->set_params(params.data());
    tokens.resize(size_t(B) * T), lengths.assign(B, T), weight.assign(size_t(B) * (T - 1), 1.0f);
    for (auto& t : tokens) t = int32_t(rng.next_u64() % cfg.vocab_size);
    batch = TokenBatch{tokens.data(), lengths.data(), B, T};
    loss.weight = weight.data();
    loss.norm = double(B) * (T - 1);
    opt.lr = 1e-4f, opt.weight_decay = 0.1f, opt.max_grad_norm = 1.0f;
  }
  LossStats step() {
    LossStats st = be->loss_backward(batch, loss);
    be->optimizer_step(opt);
    return st;
  }
};

void bench_train(const cudaDeviceProp& prop, int B, bool cublaslt) {
  const bool mat = cu::resolve_attention(cu::AttentionKind::Auto) == cu::AttentionKind::Materialising;
  const std::string p = std::string(cublaslt ? "train_" : "train_ownk_") + (mat ? "materialising_" : "");
  TrainRig rig(B, cublaslt);
  const ModelConfig& cfg = rig.cfg;
  const int T = 1024;
  Backend* be = rig.be.get();
  const TokenBatch& batch = rig.batch;
  LossStats st = rig.step();  // warm-up (allocations)
  const int steps = 6;
  const double t0 = now();
  for (int i = 0; i < steps; i++) st = rig.step();
  const double dt = (now() - t0) / steps;
  const double tok_s = double(B) * T / dt;
  // Forward only (log-probabilities and entropy: the scoring path of a rollout).
  std::vector<float> lp(size_t(B) * (T - 1)), ent(lp.size());
  be->logprobs(batch, lp.data(), ent.data());
  const double t1 = now();
  for (int i = 0; i < 3; i++) be->logprobs(batch, lp.data(), ent.data());
  std::printf("RESULT %s%slogprobs_ms %.1f\n", cublaslt ? "" : "ownk_", mat ? "materialising_" : "",
              (now() - t1) / 3 * 1e3);
  const double flops_per_token = 6.0 * rig.layout.numel() + 12.0 * cfg.n_layer * T * cfg.d_model;
  const double peak = peak_bf16(prop);
  std::printf("RESULT train_batch %d\n", B);
  std::printf("RESULT %sstep_ms %.1f\n", p.c_str(), dt * 1e3);
  std::printf("RESULT %stokens_per_s %.0f\n", p.c_str(), tok_s);
  std::printf("RESULT %smfu_percent %.1f\n", p.c_str(), peak > 0 ? 100.0 * flops_per_token * tok_s / peak : 0.0);
  std::printf("RESULT %sloss %.4f\n", p.c_str(), st.loss);
  std::printf("RESULT %smemory_gib %.1f\n", p.c_str(), be->memory_use().total() / double(1 << 30));
  std::fflush(stdout);
}

// A CUPTI table per unit of work (`units` training steps, decode steps, ...) taking `wall`
// seconds: "RESULT <key>_kernel_ms" (GPU time per unit; against the wall time per unit,
// printed as <key>_wall_ms, it shows how long the GPU waited for the host), then
// "PROFILE <part>" lines, longest first: ms per unit, share of the GPU time, calls per
// unit, kernel.
void print_profile(const char* part, const std::string& key,
                   const std::vector<score_bench::KernelTime>& table, int units, double wall) {
  double total = 0;
  for (const auto& k : table) total += k.ms;
  std::printf("RESULT %s_kernel_ms %.3f\n", key.c_str(), total / units);
  std::printf("RESULT %s_wall_ms %.3f\n", key.c_str(), wall * 1e3 / units);
  for (const auto& k : table)
    std::printf("PROFILE %s %8.3f ms %5.1f%% %7.1f calls  %.90s\n", part, k.ms / units,
                total > 0 ? 100 * k.ms / total : 0.0, double(k.calls) / units, k.name.c_str());
}

// Greedy, or (sampled) temperature 1, top-k 50, top-p 0.95 with the sampler on the host
// or (device) sample_rows; decode steps eager, or (graph) as one CUDA graph launch each.
// With `profile`, the timed call runs under CUPTI and its kernels are printed (see
// bench_profile).
void bench_generate(int S, int prompt, int new_tokens, bool sampled = false, bool device = false,
                    bool profile = false, bool graph = false) {
  const ModelConfig cfg = gpt2_124m();
  ParamLayout layout(cfg);
  Rng rng(2);
  const std::vector<float> params = gpt2_init(layout, rng);
  cu::Options o;
  o.sampling = device ? cu::SamplingKind::Device : cu::SamplingKind::Host;
  o.decode = graph ? cu::DecodeKind::Graph : cu::DecodeKind::Eager;
  auto be = cu::create_backend(cfg, false, o);
  be->set_params(params.data());
  GenerateRequest req;
  for (int p = 0; p < S; p++) {
    std::vector<int32_t> pr(prompt);
    for (auto& t : pr) t = int32_t(rng.next_u64() % cfg.vocab_size);
    req.prompts.push_back(pr);
  }
  req.n = 1, req.max_new_tokens = new_tokens, req.temperature = sampled ? 1.0 : 0.0;
  if (sampled) req.top_k = 50, req.top_p = 0.95, req.seed = 7;
  GenerateRequest warm = req;
  warm.max_new_tokens = 2;
  be->generate(warm);
  if (profile) score_bench::kernel_profile_start();
  const double t0 = now();
  const GenerateResult r = be->generate(req);
  const double dt = now() - t0;
  size_t n = 0;
  for (const auto& t : r.tokens) n += t.size();
  const std::string k = "gen_b" + std::to_string(S) + (graph ? "_graph" : "") +
                        (sampled ? device ? "_sampled_device" : "_sampled_host" : "");
  std::printf("RESULT %s_tokens_per_s %.0f\n", k.c_str(), n / dt);
  std::printf("RESULT %s_seconds %.3f\n", k.c_str(), dt);
  // Per decode step: the prefill is a small part of a call with 128 new tokens.
  if (profile) print_profile(graph ? "gen_graph" : "gen", k + "_step", score_bench::kernel_profile_stop(), new_tokens, dt);
  std::fflush(stdout);
}

// Where the GPU time goes: every kernel, memset and copy of 3 training steps after a
// warm-up, then (with the default attention) of one greedy generate call at batch 64, from
// CUPTI (kernel_profile.h).
void bench_profile(int B, int prompt, int new_tokens) {
  TrainRig rig(B, true);
  rig.step();
  const int steps = 3;
  score_bench::kernel_profile_start();
  const double t0 = now();
  for (int i = 0; i < steps; i++) rig.step();
  const double dt = now() - t0;
  const bool mat = cu::resolve_attention(cu::AttentionKind::Auto) == cu::AttentionKind::Materialising;
  print_profile("train", mat ? "materialising_train_step" : "train_step", score_bench::kernel_profile_stop(), steps, dt);
  // Generation has its own KV-cache attention whichever kernel trains: profiled once, in
  // the default run (check.sh runs this mode once per attention kernel).
  if (!mat) {
    bench_generate(64, prompt, new_tokens, false, false, true);
    bench_generate(64, prompt, new_tokens, false, false, true, true);  // as CUDA graphs
  }
}

}  // namespace

int main(int argc, char** argv) {
  const int B = argc > 1 ? std::atoi(argv[1]) : 8;
  const int prompt = argc > 2 ? std::atoi(argv[2]) : 64;
  const int new_tokens = argc > 3 ? std::atoi(argv[3]) : 128;
  const char* only = argc > 4 ? argv[4] : "";
  if (*only && std::strcmp(only, "train") != 0 && std::strcmp(only, "profile") != 0) {
    std::fprintf(stderr, "bench_cuda: unknown part '%s' (expected train or profile)\n", only);
    return 2;
  }
  try {
    std::printf("device: %s\n", cu::describe_device(0).c_str());
    cudaDeviceProp prop;
    SCORE_CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
    std::printf("RESULT peak_bf16_tflops %.0f\n", peak_bf16(prop) / 1e12);
    if (std::strcmp(only, "train") == 0) {
      bench_train(prop, B, true);
      return 0;
    }
    if (std::strcmp(only, "profile") == 0) {
      bench_profile(B, prompt, new_tokens);
      return 0;
    }
    bench_gemm();
    bench_attention(B);
    std::printf("RESULT cublaslt %d\n", cu::LtMatmul::available() ? 1 : 0);
    bench_train(prop, B, true);
    if (cu::LtMatmul::available()) bench_train(prop, B, false);  // our kernel alone
    for (int S : {64, 256}) bench_generate(S, prompt, new_tokens);
    // Stochastic sampling: the step's logits to the host and the CPU sampler (the
    // default), against sample_rows on the device (SCORE_CUDA_SAMPLING=device).
    bench_generate(64, prompt, new_tokens, true, false);
    bench_generate(64, prompt, new_tokens, true, true);
    // Decode steps as CUDA graphs (SCORE_CUDA_DECODE=graph), greedy and device-sampled.
    for (int S : {64, 256}) bench_generate(S, prompt, new_tokens, false, false, false, true);
    bench_generate(64, prompt, new_tokens, true, true, false, true);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_cuda: %s\n", e.what());
    return 1;
  }
  return 0;
}
