// AdamW and the global gradient norm (cpu twin: native/cpu/adamw.cpp). The update
// uses the same float expression as the CPU with the same host-computed constants.
#include <algorithm>
#include <cmath>

#include "cuda/common.h"
#include "cuda/kernels.h"
#include "cuda/reduce.cuh"

namespace score::cuda {
namespace {

__global__ void sum_squares_kernel(double* out, const float* x, size_t n) {
  __shared__ double scratch[32];
  double s = 0;
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x)
    s += static_cast<double>(x[i]) * x[i];
  s = block_sum(s, scratch);
  if (threadIdx.x == 0) atomicAdd(out, s);
}

__global__ void adamw_kernel(float* p, const float* grads, float* m, float* v, size_t n,
                             float beta1, float beta2, float eps, float decay, float step,
                             float inv_sqrt_bc2, float grad_scale) {
  const size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x;
  if (i >= n) return;
  const float g = grads[i] * grad_scale;
  const float mi = beta1 * m[i] + (1.0f - beta1) * g;
  const float vi = beta2 * v[i] + (1.0f - beta2) * g * g;
  m[i] = mi;
  v[i] = vi;
  p[i] = p[i] * decay - step * mi / (sqrtf(vi) * inv_sqrt_bc2 + eps);
}

}  // namespace

void sum_squares(double* out, const float* x, size_t n, cudaStream_t stream) {
  if (n == 0) return;
  const int blocks = std::min(ceil_div(static_cast<long long>(n), 256), 1024);
  sum_squares_kernel<<<blocks, 256, 0, stream>>>(out, x, n);
  SCORE_CUDA_LAUNCH_CHECK();
}

void adamw_update(float* params, const float* grads, float* m, float* v, size_t n, float lr,
                  float beta1, float beta2, float eps, float weight_decay, int t,
                  float grad_scale, cudaStream_t stream) {
  if (n == 0) return;
  const double bc1 = 1.0 - std::pow(static_cast<double>(beta1), t);
  const double bc2 = 1.0 - std::pow(static_cast<double>(beta2), t);
  const float step = static_cast<float>(lr / bc1);
  const float inv_sqrt_bc2 = static_cast<float>(1.0 / std::sqrt(bc2));
  const float decay = static_cast<float>(1.0 - static_cast<double>(lr) * weight_decay);
  adamw_kernel<<<ceil_div(static_cast<long long>(n), 256), 256, 0, stream>>>(
      params, grads, m, v, n, beta1, beta2, eps, decay, step, inv_sqrt_bc2, grad_scale);
  SCORE_CUDA_LAUNCH_CHECK();
}

}  // namespace score::cuda
