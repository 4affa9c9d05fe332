// The backend seam: the Model facade (model.h) owns the configuration and talks
// to exactly one backend through this interface. The CPU backend is linked
// into the core; the CUDA backend is a separately loaded shared library
// (libscore_cuda.so) exporting `score_cuda_create_backend`, so the CPU addon
// loads on machines without CUDA.
#pragma once
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "score/config.h"
#include "score/params.h"

namespace score {

// A batch of right-padded token sequences. Row b holds lengths[b] real tokens
// (1 <= lengths[b] <= T) followed by padding that is never read as a target.
// Target of position t is tokens[b, t+1]; there are T-1 target slots per row.
struct TokenBatch {
  const int32_t* tokens = nullptr;   // (B, T)
  const int32_t* lengths = nullptr;  // (B)
  int B = 0, T = 0;
};

enum class KlEstimator { K1, K3 };

// The per-token loss over target slots (b, t) with t + 1 < lengths[b]; every
// per-token array is (B, T-1).
//   SFT: loss_t = -logp_t
//   RL:  loss_t = w_pg_t * pg_t + w_kl_t * KL_t, where
//        pg_t = -A_t * logp_t                                  (no clipping)
//        pg_t = -min(r_t A_t, clip(r_t, 1-eps, 1+eps) A_t),  r_t = exp(logp_t - old_logp_t)
//        KL_t (k1) = logp_t - ref_logp_t
//        KL_t (k3) = exp(ref_logp_t - logp_t) - (ref_logp_t - logp_t) - 1
// The total is sum_t weight_t * loss_t / norm. SCoRe is expressed entirely
// through these per-token arrays, which the TypeScript layer fills in.
struct TokenLoss {
  bool rl = false;
  const float* weight = nullptr;  // loss mask / weights
  double norm = 1.0;
  const float* w_pg = nullptr;      // RL
  const float* adv = nullptr;       // RL
  const float* w_kl = nullptr;      // RL
  const float* ref_logp = nullptr;  // RL (with w_kl)
  const float* old_logp = nullptr;  // RL, behaviour log-probabilities (needed when clip_eps > 0)
  KlEstimator kl = KlEstimator::K1;
  double clip_eps = 0;  // 0: no ratio clipping
};

struct LossStats {
  double loss = 0;        // the normalised loss of this call
  double pg_loss = 0;     // its policy-gradient part (RL)
  double kl_loss = 0;     // its KL part (RL): sum weight * w_kl * KL / norm
  double kl_mean = 0;     // mean KL over weighted tokens (RL)
  double entropy_mean = 0;  // mean next-token entropy over weighted tokens (RL)
  double clip_frac = 0;   // fraction of weighted tokens whose ratio was clipped (RL)
  double weight_sum = 0;  // sum of weights over real target slots
  int64_t tokens = 0;     // real target slots
};

// Batched generation. P prompts, n samples each: sequence r = p * n + j.
struct GenerateRequest {
  std::vector<std::vector<int32_t>> prompts;
  int n = 1;
  int max_new_tokens = 64;
  int eos_id = -1;  // -1: none
  std::vector<std::vector<int32_t>> stop_sequences;
  double temperature = 1.0;  // 0: greedy
  int top_k = 0;
  double top_p = 1.0;
  uint64_t seed = 0;
  size_t memory_budget = 0;  // bytes for the KV cache; 0: no limit
  const std::atomic<bool>* cancel = nullptr;            // polled once per step
  std::function<void(int step, int active)> progress;   // called on the worker thread
};

enum class FinishReason { Length = 0, Eos = 1, Stop = 2 };

struct GenerateResult {
  std::vector<std::vector<int32_t>> tokens;        // new tokens per sequence (EOS / stop included)
  std::vector<std::vector<float>> logp;            // under the policy (temperature 1)
  std::vector<std::vector<float>> logp_sampling;   // under the sampling distribution
  std::vector<FinishReason> finish;
  size_t kv_cache_bytes = 0;
  int steps = 0;
};

// Whether a sequence being generated is done after its latest new token: at EOS or a stop
// sequence (sets *why), or at the new-token limit or the end of the `context` positions
// (*why untouched: Length). One rule for every backend.
bool generation_done(const GenerateRequest& req, const std::vector<int32_t>& out, int prompt_len,
                     int context, FinishReason* why);

struct AdamWConfig {
  float lr = 1e-3f, beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f, weight_decay = 0.0f;
  float max_grad_norm = 0.0f;  // <= 0: no clipping
};

struct StepStats {
  double grad_norm = 0;  // global L2 norm before clipping
  double clip_scale = 1;  // factor applied to the gradients (1 when not clipped)
  int64_t step = 0;      // AdamW steps taken so far, including this one
  bool skipped = false;  // the gradient norm was not finite: no update, gradients dropped
};

// What a model holds between calls, in bytes. Not included: what one call allocates and
// frees again (the classifier's chunk of logits, at most 32 MiB; GEMM packing buffers, a
// few MiB; the KV cache of a generate call).
struct MemoryUse {
  size_t params = 0;       // the weights
  size_t grads = 0;        // the gradient buffer (trainable models, from the first backward)
  size_t optimizer = 0;    // AdamW moments m and v
  size_t activations = 0;  // forward values kept for the backward pass, sized by the largest batch
  size_t scratch = 0;      // the backward pass's work buffers and other per-row buffers
  size_t total() const { return params + grads + optimizer + activations + scratch; }
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;
  virtual std::unique_ptr<Backend> clone(bool trainable) const = 0;

  virtual void set_params(const float* host) = 0;  // ParamLayout order
  virtual void get_params(float* host) const = 0;

  // logp, entropy (B, T-1); slots past a row's length are 0. entropy nullable.
  virtual void logprobs(const TokenBatch& batch, float* logp, float* entropy) = 0;
  // Forward + backward; ADDS the gradient of the loss into the gradient buffer.
  virtual LossStats loss_backward(const TokenBatch& batch, const TokenLoss& loss) = 0;
  // AdamW with global-norm clipping on the accumulated gradients, then zeroes them.
  virtual StepStats optimizer_step(const AdamWConfig& opt) = 0;
  virtual void zero_grad() = 0;
  // AdamW state for checkpoints: moments m and v (ParamLayout order; zeros before the
  // first step) and the number of steps taken. Frozen models have none (InvalidArgument).
  virtual int64_t get_optimizer_state(float* m, float* v) const = 0;
  virtual void set_optimizer_state(const float* m, const float* v, int64_t step) = 0;
  // Prefill + KV-cache decode (request already validated by the Model).
  virtual GenerateResult generate(const GenerateRequest& req) = 0;
  // Bytes held between calls, by kind (see MemoryUse).
  virtual MemoryUse memory_use() const = 0;
};

std::unique_ptr<Backend> create_cpu_backend(const ModelConfig& cfg, bool trainable);

}  // namespace score
