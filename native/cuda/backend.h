// The CUDA backend's C++ entry point (the addon reaches it through the C symbol
// score_cuda_create_backend; tests and the benchmark link it directly).
#pragma once
#include <memory>
#include <string>

#include "cuda/kernels.h"
#include "score/backend.h"

namespace score::cuda {

// Which attention kernel the model's training and scoring passes use (generation has its
// own KV-cache kernel either way).
enum class AttentionKind {
  Auto,           // from the environment: SCORE_CUDA_ATTENTION=materialising, else Flash
  Materialising,  // attention.cu: (B, H, T, T) probabilities kept (the reference)
  Flash,          // attention_flash.cu: fused, (B, H, T) saved (the default); head_dim
                  // <= 128, else the materialising kernel is used
};

// Where stochastic sampling (temperature > 0) runs during generate (greedy is always on
// the device).
enum class SamplingKind {
  Auto,    // from the environment: SCORE_CUDA_SAMPLING=host, else Device
  Host,    // the step's logits copied to the host, cpu::sample_row (the reference)
  Device,  // sampling.cu's sample_rows (the default); the host draws the same uniforms
           // from the same streams, so both give the same tokens
};

// How generate runs its decode steps (the prefill is the same either way).
enum class DecodeKind {
  Auto,   // from the environment: SCORE_CUDA_DECODE=graph, else Eager
  Eager,  // the active sequences' rows, launched kernel by kernel (the default)
  Graph,  // every sequence's row (finished ones as stand-ins), the step captured once as a
          // CUDA graph and launched whole: one launch per step instead of ~150. Opt-in
          // until it has been measured on a GPU.
};

struct Options {
  // FP32 runs every product on the float32 SIMT GEMM: slow, but it matches the CPU
  // backend to float rounding (the verification path of the tests).
  MatmulPrecision matmul = MatmulPrecision::BF16;
  // bf16 products of the linear layers and the lm_head through cuBLASLt when the build
  // has it (LtMatmul::available()); false: our tensor-core kernel for everything.
  bool cublaslt = true;
  int device = 0;
  AttentionKind attention = AttentionKind::Auto;
  SamplingKind sampling = SamplingKind::Auto;
  DecodeKind decode = DecodeKind::Auto;
};

// Auto resolved: SCORE_CUDA_ATTENTION unset, empty or "flash" -> Flash, "materialising"
// -> Materialising; any other value throws InvalidArgument naming the accepted ones.
AttentionKind resolve_attention(AttentionKind requested);
// Auto resolved: SCORE_CUDA_SAMPLING unset, empty or "device" -> Device, "host" -> Host;
// any other value throws InvalidArgument.
SamplingKind resolve_sampling(SamplingKind requested);
// Auto resolved: SCORE_CUDA_DECODE unset, empty or "eager" -> Eager, "graph" -> Graph; any
// other value throws InvalidArgument.
DecodeKind resolve_decode(DecodeKind requested);

// Throws score::Error(Device) naming what is missing (driver, device, architecture).
std::unique_ptr<Backend> create_backend(const ModelConfig& cfg, bool trainable, const Options& opt);

// "NVIDIA H100 80GB HBM3 (sm_90, 79 GiB)" for device `index`; throws like create_backend.
std::string describe_device(int index);

}  // namespace score::cuda

// The library's C entry points, found with dlsym by native/core/backend_loader.cpp (and
// linked directly by the CUDA tests). They never throw: nullptr / false, with the reason
// in `err` / `out`, when the device cannot be used.
extern "C" score::Backend* score_cuda_create_backend(const score::ModelConfig* cfg, bool trainable,
                                                     char* err, size_t errlen);
extern "C" bool score_cuda_describe_device(int index, char* out, size_t outlen);
