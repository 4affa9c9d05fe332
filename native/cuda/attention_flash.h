// attention_flash.cu: causal grouped-query attention, fused (FlashAttention-2 scheme),
// the same function as attention_forward / attention_backward of kernels.h (the
// materialising reference) and the same conventions (device pointers, `stream`,
// score::Error on failure), except that backward OVERWRITES dqkv (attention_backward
// adds into it): the backend then zeroes nothing before it. Kept out of kernels.h so that
// editing it does not rebuild every kernel.
//
// Never materialises (B, H, T, T): forward keeps lse (B, H, T), the log-sum-exp of each
// row's scaled scores, and backward rebuilds the probabilities from it.
//   qkv (B, T, (H + 2 KVH) hd), out and dout (B, T, H hd), dqkv like qkv;
//   delta (B, H, T) is backward workspace; backward reads the forward's out and lse.
// prec as for the GEMM: BF16 = bf16 operands on the tensor cores, float32 accumulation;
// FP32 = float32 throughout (the verification path). Head sizes 1..128
// (flash_attention_supported); others throw Unsupported.
#pragma once
#include <cuda_runtime_api.h>

#include "cuda/kernels.h"

namespace score::cuda {

bool flash_attention_supported(int hd);
// out16 (optional): out's bf16 copy (nearest even), the attention projection's operand.
void flash_attention_forward(float* out, float* lse, const float* qkv, int B, int T, int H, int KVH,
                             int hd, MatmulPrecision prec, cudaStream_t stream,
                             uint16_t* out16 = nullptr);
void flash_attention_backward(float* dqkv, float* delta, const float* dout, const float* qkv,
                              const float* out, const float* lse, int B, int T, int H, int KVH,
                              int hd, MatmulPrecision prec, cudaStream_t stream);

}  // namespace score::cuda
