// LayerNorm with weight and bias (cpu twin: native/cpu/layernorm.cpp). One warp per
// row; two-pass variance like the CPU. The weight/bias gradients are summed per
// block in shared memory and added to global memory once per block.
#include <algorithm>

#include "cuda/common.h"
#include "cuda/kernels.h"
#include "cuda/reduce.cuh"

namespace score::cuda {
namespace {

constexpr int kWarps = 8;
constexpr int kMaxSharedC = 4096;  // dw/db block partials in shared memory up to this width

__global__ void layernorm_forward_kernel(float* out, float* mean, float* rstd, const float* inp,
                                         const float* w, const float* b, int N, int C, float eps) {
  const int lane = threadIdx.x % 32;
  const int n = blockIdx.x * kWarps + threadIdx.x / 32;
  if (n >= N) return;
  const float* x = inp + static_cast<int64_t>(n) * C;
  float s = 0.f;
  for (int c = lane; c < C; c += 32) s += x[c];
  const float m = warp_sum(s) / C;
  float v = 0.f;
  for (int c = lane; c < C; c += 32) v += (x[c] - m) * (x[c] - m);
  const float r = rsqrtf(warp_sum(v) / C + eps);
  float* o = out + static_cast<int64_t>(n) * C;
  for (int c = lane; c < C; c += 32) o[c] = (x[c] - m) * r * w[c] + b[c];
  if (lane == 0) {
    if (mean) mean[n] = m;
    rstd[n] = r;
  }
}

__global__ void layernorm_backward_kernel(float* dinp, float* dw, float* db, const float* dout,
                                          const float* inp, const float* w, const float* mean,
                                          const float* rstd, int N, int C) {
  extern __shared__ float part[];  // (2C): dw, db partials of this block
  const bool shared = C <= kMaxSharedC;
  if (shared)
    for (int c = threadIdx.x; c < 2 * C; c += blockDim.x) part[c] = 0.f;
  __syncthreads();
  const int lane = threadIdx.x % 32;
  for (int n = blockIdx.x * kWarps + threadIdx.x / 32; n < N; n += gridDim.x * kWarps) {
    const float* x = inp + static_cast<int64_t>(n) * C;
    const float* d = dout + static_cast<int64_t>(n) * C;
    const float m = mean[n], r = rstd[n];
    if (dinp) {
      float s1 = 0.f, s2 = 0.f;
      for (int c = lane; c < C; c += 32) {
        const float dxhat = d[c] * w[c];
        s1 += dxhat;
        s2 += dxhat * ((x[c] - m) * r);
      }
      const float m1 = warp_sum(s1) / C, m2 = warp_sum(s2) / C;
      float* di = dinp + static_cast<int64_t>(n) * C;
      for (int c = lane; c < C; c += 32) di[c] += r * (d[c] * w[c] - m1 - (x[c] - m) * r * m2);
    }
    for (int c = lane; c < C; c += 32) {
      const float gw = d[c] * ((x[c] - m) * r), gb = d[c];
      if (shared) {
        atomicAdd(part + c, gw);
        atomicAdd(part + C + c, gb);
      } else {
        if (dw) atomicAdd(dw + c, gw);
        if (db) atomicAdd(db + c, gb);
      }
    }
  }
  __syncthreads();
  if (shared)
    for (int c = threadIdx.x; c < C; c += blockDim.x) {
      if (dw) atomicAdd(dw + c, part[c]);
      if (db) atomicAdd(db + c, part[C + c]);
    }
}

}  // namespace

void layernorm_forward(float* out, float* mean, float* rstd, const float* inp, const float* w,
                       const float* b, int N, int C, double eps, cudaStream_t stream) {
  if (N == 0) return;
  layernorm_forward_kernel<<<ceil_div(N, kWarps), kWarps * 32, 0, stream>>>(
      out, mean, rstd, inp, w, b, N, C, static_cast<float>(eps));
  SCORE_CUDA_LAUNCH_CHECK();
}

void layernorm_backward(float* dinp, float* dw, float* db, const float* dout, const float* inp,
                        const float* w, const float* mean, const float* rstd, int N, int C,
                        cudaStream_t stream) {
  if (N == 0) return;
  const int blocks = std::min(ceil_div(N, kWarps), 512);
  const size_t smem = C <= kMaxSharedC ? 2 * sizeof(float) * C : 0;
  layernorm_backward_kernel<<<blocks, kWarps * 32, smem, stream>>>(dinp, dw, db, dout, inp, w, mean,
                                                                   rstd, N, C);
  SCORE_CUDA_LAUNCH_CHECK();
}

}  // namespace score::cuda
