// The CUDA backend's C++ entry point (the addon reaches it through the C symbol
// score_cuda_create_backend; tests and the benchmark link it directly).
#pragma once
#include <memory>
#include <string>

#include "cuda/kernels.h"
#include "score/backend.h"

namespace score::cuda {

struct Options {
  // FP32 runs every product on the float32 SIMT GEMM: slow, but it matches the CPU
  // backend to float rounding (the verification path of the tests).
  MatmulPrecision matmul = MatmulPrecision::BF16;
  // bf16 products of the linear layers and the lm_head through cuBLASLt when the build
  // has it (LtMatmul::available()); false: our tensor-core kernel for everything.
  bool cublaslt = true;
  int device = 0;
};

// Throws score::Error(Device) naming what is missing (driver, device, architecture).
std::unique_ptr<Backend> create_backend(const ModelConfig& cfg, bool trainable, const Options& opt);

// "NVIDIA H100 80GB HBM3 (sm_90, 79 GiB)" for device `index`; throws like create_backend.
std::string describe_device(int index);

}  // namespace score::cuda
