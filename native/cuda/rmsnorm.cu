// RMSNorm (cpu twin: native/cpu/rmsnorm.cpp): out = inp * rstd * w. One warp per row;
// weight gradient partials per block in shared memory.
#include <algorithm>

#include "cuda/common.h"
#include "cuda/kernels.h"
#include "cuda/reduce.cuh"
#include "cuda/vec.cuh"

namespace score::cuda {
namespace {

constexpr int kWarps = 8;
constexpr int kMaxSharedC = 8192;

// With res: x += res first, in place (each lane writes and later reads its own columns).
__global__ void rmsnorm_forward_kernel(float* out, uint16_t* out16, float* rstd, float* inp,
                                       const float* res, const float* w, int N, int C, float eps) {
  const int lane = threadIdx.x % 32;
  const int n = blockIdx.x * kWarps + threadIdx.x / 32;
  if (n >= N) return;
  float* x = inp + static_cast<int64_t>(n) * C;
  float ss = 0.f;
  for (int c = lane; c < C; c += 32) {
    if (res) x[c] += res[static_cast<int64_t>(n) * C + c];
    ss += x[c] * x[c];
  }
  const float r = rsqrtf(warp_sum(ss) / C + eps);
  const int64_t row = static_cast<int64_t>(n) * C;
  for (int c = lane; c < C; c += 32) {
    const float v = (x[c] * r) * w[c];
    store_out(out, out16, row + c, v);
  }
  if (lane == 0 && rstd) rstd[n] = r;
}

__global__ void rmsnorm_backward_kernel(float* dinp, uint16_t* dinp16, float* dw, const float* dout,
                                        const float* inp, const float* w, const float* rstd, int N,
                                        int C) {
  extern __shared__ float part[];  // (C) dw partials
  const bool shared = C <= kMaxSharedC;
  if (shared)
    for (int c = threadIdx.x; c < C; c += blockDim.x) part[c] = 0.f;
  __syncthreads();
  const int lane = threadIdx.x % 32;
  for (int n = blockIdx.x * kWarps + threadIdx.x / 32; n < N; n += gridDim.x * kWarps) {
    const float* x = inp + static_cast<int64_t>(n) * C;
    const float* d = dout + static_cast<int64_t>(n) * C;
    const float r = rstd[n];
    if (dinp) {
      float s = 0.f;
      for (int c = lane; c < C; c += 32) s += d[c] * w[c] * x[c];
      const float k = warp_sum(s) / C * r * r;
      const int64_t row = static_cast<int64_t>(n) * C;
      for (int c = lane; c < C; c += 32) {
        const float v = dinp[row + c] + r * (d[c] * w[c] - x[c] * k);
        dinp[row + c] = v;
        if (dinp16) store(dinp16 + row + c, v);
      }
    }
    if (dw)
      for (int c = lane; c < C; c += 32) {
        const float gw = d[c] * (x[c] * r);
        if (shared) atomicAdd(part + c, gw);
        else atomicAdd(dw + c, gw);
      }
  }
  __syncthreads();
  if (shared && dw)
    for (int c = threadIdx.x; c < C; c += blockDim.x) atomicAdd(dw + c, part[c]);
}

}  // namespace

void rmsnorm_forward(float* out, float* rstd, float* inp, const float* w, int N, int C,
                     double eps, cudaStream_t stream, uint16_t* out16, const float* residual) {
  if (N == 0) return;
  rmsnorm_forward_kernel<<<ceil_div(N, kWarps), kWarps * 32, 0, stream>>>(out, out16, rstd, inp, residual,
                                                                          w, N, C, static_cast<float>(eps));
  SCORE_CUDA_LAUNCH_CHECK();
}

void rmsnorm_backward(float* dinp, float* dw, const float* dout, const float* inp, const float* w,
                      const float* rstd, int N, int C, cudaStream_t stream, uint16_t* dinp16) {
  if (N == 0) return;
  const int blocks = std::min(ceil_div(N, kWarps), 512);
  const size_t smem = C <= kMaxSharedC ? sizeof(float) * C : 0;
  rmsnorm_backward_kernel<<<blocks, kWarps * 32, smem, stream>>>(dinp, dinp16, dw, dout, inp, w, rstd,
                                                                 N, C);
  SCORE_CUDA_LAUNCH_CHECK();
}

}  // namespace score::cuda
