// Elementwise layers (cpu twins: native/cpu/gelu.cpp, native/cpu/swiglu.cpp) and the
// residual add. Same float formulas as the CPU: GELU-tanh as x / (1 + exp(-2u)).

#include "cuda/columns.cuh"
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
// Each result goes to the float32 output and / or its bf16 copy, whichever is given
// (store_out, and four at once: put4).
__device__ __forceinline__ void put4(float* out, uint16_t* out16, size_t i, float4 v) {
  if (out) reinterpret_cast<float4*>(out)[i] = v;
  if (out16) reinterpret_cast<uint2*>(out16)[i] = bf16x4(v);
}

__global__ void gelu_forward_kernel(float* out, uint16_t* out16, const float* inp, Span sp) {
  for (size_t i = sp.first(); i < sp.n4; i += sp.stride()) {
    const float4 x = reinterpret_cast<const float4*>(inp)[i];
    put4(out, out16, i, make_float4(gelu(x.x), gelu(x.y), gelu(x.z), gelu(x.w)));
  }
  for (size_t i = 4 * sp.n4 + sp.first(); i < sp.n; i += sp.stride()) store_out(out, out16, i, gelu(inp[i]));
}

// GELU backward over (N, F) rows, with the column sums of dinp (the bias gradient of the
// linear layer that produced inp) added into dbias (nullable) in the same pass
// (columns.cuh); 16-byte loads when VEC.
template <bool VEC>
__global__ void __launch_bounds__(kColumnThreads)
    gelu_backward_kernel(float* dinp, uint16_t* dinp16, float* dbias, const float* inp,
                         const float* dout, int N, int F, int rows) {
  __shared__ float4 part[8][32];
  walk_columns(part, N, F, F, rows, dbias, [&](int64_t at, int cnt) {
    if (VEC) {  // cnt is 4: F % 4 == 0
      const float4 x = *reinterpret_cast<const float4*>(inp + at);
      const float4 d = *reinterpret_cast<const float4*>(dout + at);
      const float4 g = make_float4(gelu_grad(x.x, d.x), gelu_grad(x.y, d.y), gelu_grad(x.z, d.z),
                                   gelu_grad(x.w, d.w));
      put4(dinp, dinp16, at / 4, g);
      return g;
    }
    float g[4] = {0.f, 0.f, 0.f, 0.f};
    for (int e = 0; e < cnt; e++) {
      g[e] = gelu_grad(inp[at + e], dout[at + e]);
      store_out(dinp, dinp16, at + e, g[e]);
    }
    return make_float4(g[0], g[1], g[2], g[3]);
  });
}

// inp (N, 2F) = [gate | up]; out (N, F).
__global__ void swiglu_forward_kernel(float* out, uint16_t* out16, const float* inp, int N, int Fd) {
  const int64_t idx = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (idx >= static_cast<int64_t>(N) * Fd) return;
  const int64_t n = idx / Fd, i = idx % Fd;
  const float g = inp[n * 2 * Fd + i], u = inp[n * 2 * Fd + Fd + i];
  store_out(out, out16, idx, g / (1.0f + expf(-g)) * u);
}

__global__ void swiglu_backward_kernel(float* dinp, uint16_t* dinp16, const float* inp,
                                       const float* dout, int N, int Fd) {
  const int64_t idx = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (idx >= static_cast<int64_t>(N) * Fd) return;
  const int64_t n = idx / Fd, i = idx % Fd;
  const float g = inp[n * 2 * Fd + i], u = inp[n * 2 * Fd + Fd + i], d = dout[idx];
  const float s = 1.0f / (1.0f + expf(-g));
  store_out(dinp, dinp16, n * 2 * Fd + i, d * u * s * (1.0f + g * (1.0f - s)));
  store_out(dinp, dinp16, n * 2 * Fd + Fd + i, d * g * s);
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

void gelu_forward(float* out, const float* inp, size_t n, cudaStream_t stream, uint16_t* out16) {
  if (n == 0) return;
  const Span sp = span(n, aligned(out, 16) && aligned(out16, 8) && aligned(inp, 16));
  gelu_forward_kernel<<<blocks_for(sp), 256, 0, stream>>>(out, out16, inp, sp);
  SCORE_CUDA_LAUNCH_CHECK();
}
void gelu_backward(float* dinp, const float* inp, const float* dout, int N, int F,
                   cudaStream_t stream, uint16_t* dinp16, float* dbias) {
  if (N == 0 || F == 0) return;
  const bool vec = F % 4 == 0 && aligned(dinp, 16) && aligned(dinp16, 8) && aligned(inp, 16) &&
                   aligned(dout, 16);
  const dim3 grid = column_grid(N, F);
  const int rows = column_rows(N);
  if (vec)
    gelu_backward_kernel<true><<<grid, kColumnThreads, 0, stream>>>(dinp, dinp16, dbias, inp, dout, N, F, rows);
  else
    gelu_backward_kernel<false><<<grid, kColumnThreads, 0, stream>>>(dinp, dinp16, dbias, inp, dout, N, F, rows);
  SCORE_CUDA_LAUNCH_CHECK();
}
void swiglu_forward(float* out, const float* inp, int N, int Fd, cudaStream_t stream, uint16_t* out16) {
  const int64_t n = static_cast<int64_t>(N) * Fd;
  if (n == 0) return;
  swiglu_forward_kernel<<<ceil_div(n, 256), 256, 0, stream>>>(out, out16, inp, N, Fd);
  SCORE_CUDA_LAUNCH_CHECK();
}
void swiglu_backward(float* dinp, const float* inp, const float* dout, int N, int Fd,
                     cudaStream_t stream, uint16_t* dinp16) {
  const int64_t n = static_cast<int64_t>(N) * Fd;
  if (n == 0) return;
  swiglu_backward_kernel<<<ceil_div(n, 256), 256, 0, stream>>>(dinp, dinp16, inp, dout, N, Fd);
  SCORE_CUDA_LAUNCH_CHECK();
}
void add_inplace(float* y, const float* x, size_t n, cudaStream_t stream) {
  if (n == 0) return;
  const Span sp = span(n, aligned(y, 16) && aligned(x, 16));
  add_kernel<<<blocks_for(sp), 256, 0, stream>>>(y, x, sp);
  SCORE_CUDA_LAUNCH_CHECK();
}

}  // namespace score::cuda
