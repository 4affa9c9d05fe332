// The Model: the one object the addon (and C++ users) hold. It owns the
// configuration and one backend, validates every request before any work
// starts, and loads/saves Hugging Face checkpoints. Not thread-safe: one call
// at a time (the addon serialises calls per model).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "score/backend.h"
#include "score/config.h"
#include "score/params.h"

namespace score {

struct DeviceOptions {
  std::string device = "cpu";  // "cpu" | "cuda"
  std::string cuda_library;    // path of libscore_cuda.so ("" = next to the caller's search path)
};

class Model {
 public:
  // Loads a Hugging Face checkpoint folder (config.json + safetensors).
  static std::unique_ptr<Model> load(const std::string& dir, const DeviceOptions& dev = {});
  // A randomly initialised model (GPT-2 style: N(0, 0.02), residual
  // projections scaled by 1/sqrt(2 L), norms 1, biases 0), from `seed`.
  static std::unique_ptr<Model> init(const ModelConfig& cfg, uint64_t seed,
                                     const DeviceOptions& dev = {});

  // A copy of the weights. trainable=false gives a frozen reference: weights
  // only, no gradients or optimizer state.
  std::unique_ptr<Model> clone(bool trainable) const;

  const ModelConfig& config() const { return cfg_; }
  const ParamLayout& layout() const { return layout_; }
  bool trainable() const { return trainable_; }
  std::string device() const { return backend_->name(); }
  size_t num_params() const { return layout_.numel(); }
  size_t memory_bytes() const { return backend_->memory_use().total(); }
  MemoryUse memory_use() const { return backend_->memory_use(); }

  // Validates the batch (ids inside the vocabulary, 1 <= lengths <= T <= max
  // positions) and fills logp (and entropy, nullable) of shape (B, T-1).
  void logprobs(const TokenBatch& batch, float* logp, float* entropy);
  // Supervised step: forward + backward of sum(weight * -logp) / norm, adding
  // into the gradients (accumulate over micro-batches, then optimizer_step).
  LossStats sft_backward(const TokenBatch& batch, const TokenLoss& loss);
  // Policy-gradient + KL step (TokenLoss with rl = true): forward + backward,
  // adding into the gradients.
  LossStats rl_backward(const TokenBatch& batch, const TokenLoss& loss);
  StepStats optimizer_step(const AdamWConfig& opt);
  // Batched sampling with a KV cache; validates the request first.
  GenerateResult generate(const GenerateRequest& req);
  void zero_grad() { backend_->zero_grad(); }

  std::vector<float> get_params() const;
  void set_params(const std::vector<float>& params);
  // AdamW moments and step count (for resumable runs); m and v have num_params() values.
  struct OptimizerState {
    std::vector<float> m, v;
    int64_t step = 0;
  };
  OptimizerState get_optimizer_state() const;
  void set_optimizer_state(const OptimizerState& s);
  void save(const std::string& dir) const;

 private:
  Model(const ModelConfig& cfg, std::unique_ptr<Backend> backend, bool trainable);
  void validate(const TokenBatch& batch, bool need_targets) const;

  ModelConfig cfg_;
  ParamLayout layout_;
  std::unique_ptr<Backend> backend_;
  bool trainable_;
};

// The CUDA device `index` in words ("NVIDIA H200 (sm_90, 139 GiB)"), through the CUDA
// backend library; false and the reason (library, driver, device missing) otherwise.
bool describe_cuda_device(const DeviceOptions& dev, int index, std::string* text);

// Picks the backend for a device; "cuda" loads libscore_cuda.so and fails
// with ErrorCode::Device naming what is missing.
std::unique_ptr<Backend> create_backend(const ModelConfig& cfg, bool trainable,
                                        const DeviceOptions& dev);

}  // namespace score
