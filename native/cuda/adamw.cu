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

// One block per chunk (a piece of one tensor in the flat buffers). The gradient scale
// comes from the global norm on the device, so the host need not wait for it: a
// non-finite norm leaves everything untouched (the host then drops the gradients), a norm
// over max_norm (> 0) scales the gradients by max_norm / (norm + 1e-6), the CPU's
// expression in double. p16 (nullable): the new parameters in bf16 too.
__global__ void adamw_kernel(const AdamWChunk* chunks, float* p, const float* grads, float* m,
                             float* v, uint16_t* p16, const double* sumsq, double max_norm,
                             bool vec_base, AdamW a, float decay) {
  const double norm = sqrt(*sumsq);
  if (!std::isfinite(norm)) return;
  if (max_norm > 0 && norm > max_norm) a.grad_scale = static_cast<float>(max_norm / (norm + 1e-6));
  const AdamWChunk c = chunks[blockIdx.x];
  if (c.decay) a.decay = decay;
  p += c.offset, grads += c.offset, m += c.offset, v += c.offset;
  if (p16) p16 += c.offset;
  // 16-byte groups where the chunk starts on one (the buffers' bases are aligned), then
  // the tail one element at a time.
  const uint32_t n4 = vec_base && c.offset % 4 == 0 ? c.n / 4 : 0;
  for (uint32_t i = threadIdx.x; i < n4; i += blockDim.x) {
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
  for (uint32_t i = 4 * n4 + threadIdx.x; i < c.n; i += blockDim.x) {
    p[i] = a.update(p[i], grads[i], m[i], v[i]);
    if (p16) store(p16 + i, p[i]);
  }
}

}  // namespace

void sum_squares(double* out, const float* x, size_t n, cudaStream_t stream) {
  if (n == 0) return;
  const int blocks = std::min(ceil_div(static_cast<long long>(n), 256), 1024);
  sum_squares_kernel<<<blocks, 256, 0, stream>>>(out, x, n);
  SCORE_CUDA_LAUNCH_CHECK();
}

std::vector<AdamWChunk> adamw_chunks(const std::vector<AdamWTensor>& tensors) {
  std::vector<AdamWChunk> out;
  for (const AdamWTensor& t : tensors)
    for (size_t k = 0; k < t.numel; k += kAdamWChunk)
      out.push_back({t.offset + k, static_cast<uint32_t>(std::min(kAdamWChunk, t.numel - k)),
                     t.decay ? 1u : 0u});
  return out;
}

void adamw_update(const AdamWChunk* chunks, int nchunks, float* params, const float* grads,
                  float* m, float* v, uint16_t* params16, const double* sumsq,
                  const AdamWHyper& h, cudaStream_t stream) {
  if (nchunks == 0) return;
  // Constants from the host in double, then float: the CPU's (native/cpu/adamw.cpp).
  const double bc1 = 1.0 - std::pow(static_cast<double>(h.beta1), h.t);
  const double bc2 = 1.0 - std::pow(static_cast<double>(h.beta2), h.t);
  const float step = static_cast<float>(h.lr / bc1);
  const float inv_sqrt_bc2 = static_cast<float>(1.0 / std::sqrt(bc2));
  const float decay = static_cast<float>(1.0 - static_cast<double>(h.lr) * h.weight_decay);
  const bool vec = aligned(params, 16) && aligned(grads, 16) && aligned(m, 16) && aligned(v, 16) &&
                   (!params16 || aligned(params16, 8));
  const AdamW a{h.beta1, h.beta2, h.eps, 1.0f, step, inv_sqrt_bc2, 1.0f};
  adamw_kernel<<<nchunks, 256, 0, stream>>>(chunks, params, grads, m, v, params16, sumsq,
                                            h.max_grad_norm, vec, a, decay);
  SCORE_CUDA_LAUNCH_CHECK();
}

}  // namespace score::cuda
