// AdamW and the global gradient norm (cpu twin: native/cpu/adamw.cpp). The update
// uses the same float expression as the CPU with the same host-computed constants.
#include <algorithm>
#include <cmath>
#include <cstdint>

#include "cuda/common.h"
#include "cuda/kernels.h"
#include "cuda/reduce.cuh"
#include "cuda/vec.cuh"

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

struct AdamW {
  float beta1, beta2, eps, decay, step, inv_sqrt_bc2, grad_scale;
  // One element: m, v updated in place, the new parameter returned.
  __device__ __forceinline__ float update(float p, float g, float& m, float& v) const {
    g *= grad_scale;
    m = beta1 * m + (1.0f - beta1) * g;
    v = beta2 * v + (1.0f - beta2) * g * g;
    return p * decay - step * m / (sqrtf(v) * inv_sqrt_bc2 + eps);
  }
};

// Over a Span (vec.cuh); p16 (nullable): the new parameters in bf16 too.
__global__ void adamw_kernel(float* p, const float* grads, float* m, float* v, uint16_t* p16,
                             Span sp, AdamW a) {
  for (size_t i = sp.first(); i < sp.n4; i += sp.stride()) {
    float4 pp = reinterpret_cast<float4*>(p)[i], mm = reinterpret_cast<float4*>(m)[i],
           vv = reinterpret_cast<float4*>(v)[i];
    const float4 gg = reinterpret_cast<const float4*>(grads)[i];
    pp.x = a.update(pp.x, gg.x, mm.x, vv.x);
    pp.y = a.update(pp.y, gg.y, mm.y, vv.y);
    pp.z = a.update(pp.z, gg.z, mm.z, vv.z);
    pp.w = a.update(pp.w, gg.w, mm.w, vv.w);
    reinterpret_cast<float4*>(p)[i] = pp, reinterpret_cast<float4*>(m)[i] = mm;
    reinterpret_cast<float4*>(v)[i] = vv;
    if (p16) reinterpret_cast<uint2*>(p16)[i] = bf16x4(pp);
  }
  for (size_t i = 4 * sp.n4 + sp.first(); i < sp.n; i += sp.stride()) {
    p[i] = a.update(p[i], grads[i], m[i], v[i]);
    if (p16) p16[i] = static_cast<uint16_t>(bf16_bits(p[i]));
  }
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
                  float grad_scale, cudaStream_t stream, uint16_t* params16) {
  if (n == 0) return;
  const double bc1 = 1.0 - std::pow(static_cast<double>(beta1), t);
  const double bc2 = 1.0 - std::pow(static_cast<double>(beta2), t);
  const float step = static_cast<float>(lr / bc1);
  const float inv_sqrt_bc2 = static_cast<float>(1.0 / std::sqrt(bc2));
  const float decay = static_cast<float>(1.0 - static_cast<double>(lr) * weight_decay);
  const Span sp = span(n, aligned(params, 16) && aligned(grads, 16) && aligned(m, 16) &&
                              aligned(v, 16) && (!params16 || aligned(params16, 8)));
  const AdamW a{beta1, beta2, eps, decay, step, inv_sqrt_bc2, grad_scale};
  adamw_kernel<<<blocks_for(sp), 256, 0, stream>>>(params, grads, m, v, params16, sp, a);
  SCORE_CUDA_LAUNCH_CHECK();
}

}  // namespace score::cuda
