// Token (+ learned position) embeddings (cpu twin: native/cpu/embedding.cpp).
#include "cuda/common.h"
#include "cuda/kernels.h"

namespace score::cuda {
namespace {

__global__ void embedding_forward_kernel(float* out, const int32_t* tokens, const int32_t* pos,
                                         const float* wte, const float* wpe, int N, int C) {
  const int64_t idx = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (idx >= static_cast<int64_t>(N) * C) return;
  const int n = static_cast<int>(idx / C), c = static_cast<int>(idx % C);
  float v = wte[static_cast<int64_t>(tokens[n]) * C + c];
  if (wpe) v += wpe[static_cast<int64_t>(pos[n]) * C + c];
  out[idx] = v;
}

// Scatter-add: rows with the same token (or position) meet in float atomics, so the
// summation order (not the set of terms) varies from run to run.
__global__ void embedding_backward_kernel(float* dwte, float* dwpe, const float* dout,
                                          const int32_t* tokens, const int32_t* pos, int N, int C) {
  const int64_t idx = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (idx >= static_cast<int64_t>(N) * C) return;
  const int n = static_cast<int>(idx / C), c = static_cast<int>(idx % C);
  const float d = dout[idx];
  if (dwte) atomicAdd(dwte + static_cast<int64_t>(tokens[n]) * C + c, d);
  if (dwpe) atomicAdd(dwpe + static_cast<int64_t>(pos[n]) * C + c, d);
}

}  // namespace

void embedding_forward(float* out, const int32_t* tokens, const int32_t* pos, const float* wte,
                       const float* wpe, int N, int C, cudaStream_t stream) {
  const int64_t n = static_cast<int64_t>(N) * C;
  if (n == 0) return;
  embedding_forward_kernel<<<ceil_div(n, 256), 256, 0, stream>>>(out, tokens, pos, wte, wpe, N, C);
  SCORE_CUDA_LAUNCH_CHECK();
}

void embedding_backward(float* dwte, float* dwpe, const float* dout, const int32_t* tokens,
                        const int32_t* pos, int N, int C, cudaStream_t stream) {
  const int64_t n = static_cast<int64_t>(N) * C;
  if (n == 0 || (!dwte && !dwpe)) return;
  embedding_backward_kernel<<<ceil_div(n, 256), 256, 0, stream>>>(dwte, dwpe, dout, tokens, pos, N, C);
  SCORE_CUDA_LAUNCH_CHECK();
}

}  // namespace score::cuda
