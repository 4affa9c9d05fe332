// Elementwise layers (cpu twins: native/cpu/gelu.cpp, native/cpu/swiglu.cpp) and the
// residual add. Same float formulas as the CPU: GELU-tanh as x / (1 + exp(-2u)).
#include "cuda/common.h"
#include "cuda/kernels.h"
#include "cuda/vec.cuh"

namespace score::cuda {
namespace {

constexpr float kS2P = 0.7978845608028654f;  // sqrt(2/pi)
constexpr float kC = 0.044715f;

__device__ __forceinline__ float gelu(float x) {
  const float u = kS2P * (x + kC * x * x * x);
  return x / (1.0f + expf(-2.0f * u));
}
__device__ __forceinline__ float gelu_grad(float x, float d) {
  const float u = kS2P * (x + kC * x * x * x);
  const float s = 1.0f / (1.0f + expf(-2.0f * u));
  const float du = kS2P * (1.0f + 3.0f * kC * x * x);
  return d * (s + x * 2.0f * s * (1.0f - s) * du);
}

// The elementwise kernels walk n floats as a Span (vec.cuh): 16-byte groups, then a tail.
__global__ void gelu_forward_kernel(float* out, const float* inp, Span sp) {
  for (size_t i = sp.first(); i < sp.n4; i += sp.stride()) {
    const float4 x = reinterpret_cast<const float4*>(inp)[i];
    reinterpret_cast<float4*>(out)[i] = make_float4(gelu(x.x), gelu(x.y), gelu(x.z), gelu(x.w));
  }
  for (size_t i = 4 * sp.n4 + sp.first(); i < sp.n; i += sp.stride()) out[i] = gelu(inp[i]);
}

__global__ void gelu_backward_kernel(float* dinp, const float* inp, const float* dout, Span sp) {
  for (size_t i = sp.first(); i < sp.n4; i += sp.stride()) {
    const float4 x = reinterpret_cast<const float4*>(inp)[i];
    const float4 d = reinterpret_cast<const float4*>(dout)[i];
    float4 g = reinterpret_cast<const float4*>(dinp)[i];
    g.x += gelu_grad(x.x, d.x), g.y += gelu_grad(x.y, d.y);
    g.z += gelu_grad(x.z, d.z), g.w += gelu_grad(x.w, d.w);
    reinterpret_cast<float4*>(dinp)[i] = g;
  }
  for (size_t i = 4 * sp.n4 + sp.first(); i < sp.n; i += sp.stride()) dinp[i] += gelu_grad(inp[i], dout[i]);
}

// inp (N, 2F) = [gate | up]; out (N, F).
__global__ void swiglu_forward_kernel(float* out, const float* inp, int N, int Fd) {
  const int64_t idx = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (idx >= static_cast<int64_t>(N) * Fd) return;
  const int64_t n = idx / Fd, i = idx % Fd;
  const float g = inp[n * 2 * Fd + i], u = inp[n * 2 * Fd + Fd + i];
  out[idx] = g / (1.0f + expf(-g)) * u;
}

__global__ void swiglu_backward_kernel(float* dinp, const float* inp, const float* dout, int N,
                                       int Fd) {
  const int64_t idx = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (idx >= static_cast<int64_t>(N) * Fd) return;
  const int64_t n = idx / Fd, i = idx % Fd;
  const float g = inp[n * 2 * Fd + i], u = inp[n * 2 * Fd + Fd + i], d = dout[idx];
  const float s = 1.0f / (1.0f + expf(-g));
  dinp[n * 2 * Fd + i] += d * u * s * (1.0f + g * (1.0f - s));
  dinp[n * 2 * Fd + Fd + i] += d * g * s;
}

__global__ void add_kernel(float* y, const float* x, Span sp) {
  for (size_t i = sp.first(); i < sp.n4; i += sp.stride()) {
    float4 a = reinterpret_cast<const float4*>(y)[i];
    const float4 b = reinterpret_cast<const float4*>(x)[i];
    a.x += b.x, a.y += b.y, a.z += b.z, a.w += b.w;
    reinterpret_cast<float4*>(y)[i] = a;
  }
  for (size_t i = 4 * sp.n4 + sp.first(); i < sp.n; i += sp.stride()) y[i] += x[i];
}

}  // namespace

void gelu_forward(float* out, const float* inp, size_t n, cudaStream_t stream) {
  if (n == 0) return;
  const Span sp = span(n, aligned(out, 16) && aligned(inp, 16));
  gelu_forward_kernel<<<blocks_for(sp), 256, 0, stream>>>(out, inp, sp);
  SCORE_CUDA_LAUNCH_CHECK();
}
void gelu_backward(float* dinp, const float* inp, const float* dout, size_t n, cudaStream_t stream) {
  if (n == 0) return;
  const Span sp = span(n, aligned(dinp, 16) && aligned(inp, 16) && aligned(dout, 16));
  gelu_backward_kernel<<<blocks_for(sp), 256, 0, stream>>>(dinp, inp, dout, sp);
  SCORE_CUDA_LAUNCH_CHECK();
}
void swiglu_forward(float* out, const float* inp, int N, int Fd, cudaStream_t stream) {
  const int64_t n = static_cast<int64_t>(N) * Fd;
  if (n == 0) return;
  swiglu_forward_kernel<<<ceil_div(n, 256), 256, 0, stream>>>(out, inp, N, Fd);
  SCORE_CUDA_LAUNCH_CHECK();
}
void swiglu_backward(float* dinp, const float* inp, const float* dout, int N, int Fd,
                     cudaStream_t stream) {
  const int64_t n = static_cast<int64_t>(N) * Fd;
  if (n == 0) return;
  swiglu_backward_kernel<<<ceil_div(n, 256), 256, 0, stream>>>(dinp, inp, dout, N, Fd);
  SCORE_CUDA_LAUNCH_CHECK();
}
void add_inplace(float* y, const float* x, size_t n, cudaStream_t stream) {
  if (n == 0) return;
  const Span sp = span(n, aligned(y, 16) && aligned(x, 16));
  add_kernel<<<blocks_for(sp), 256, 0, stream>>>(y, x, sp);
  SCORE_CUDA_LAUNCH_CHECK();
}

}  // namespace score::cuda
