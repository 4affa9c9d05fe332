// The backend seam: the Model facade (model.h) owns the configuration and talks
// to exactly one backend through this interface. The CPU backend is linked
// into the core; the CUDA backend is a separately loaded shared library
// (libscore_cuda.so) exporting `score_cuda_create_backend`, so the CPU addon
// loads on machines without CUDA.
#pragma once
#include <cstdint>
#include <memory>
#include <string>

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

// The per-token loss. For every target slot (b, t) with t + 1 < lengths[b]:
//   SFT: loss += weight[b,t] * -logp[b,t]
// and the total is divided by `norm` (> 0). SCoRe's policy-gradient + KL loss
// joins this struct in the rollout/RL-loss work.
struct TokenLoss {
  const float* weight = nullptr;  // (B, T-1)
  double norm = 1.0;
};

struct LossStats {
  double loss = 0;      // the normalised loss of this call
  double weight_sum = 0;  // sum of weights over real target slots
  int64_t tokens = 0;   // real target slots
};

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
  // Bytes held by weights, gradients, optimizer state and activations.
  virtual size_t memory_bytes() const = 0;
};

std::unique_ptr<Backend> create_cpu_backend(const ModelConfig& cfg, bool trainable);

}  // namespace score
