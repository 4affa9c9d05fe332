// Elementwise layers (cpu twins: native/cpu/gelu.cpp, native/cpu/swiglu.cpp) and the
// residual add. Same float formulas as the CPU: GELU-tanh as x / (1 + exp(-2u)).
#include "cuda/common.h"
#include "cuda/kernels.h"

namespace score::cuda {
namespace {

constexpr float kS2P = 0.7978845608028654f;  // sqrt(2/pi)
constexpr float kC = 0.044715f;

__global__ void gelu_forward_kernel(float* out, const float* inp, size_t n) {
  const size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x;
  if (i >= n) return;
  const float x = inp[i];
  const float u = kS2P * (x + kC * x * x * x);
  out[i] = x / (1.0f + expf(-2.0f * u));
}

__global__ void gelu_backward_kernel(float* dinp, const float* inp, const float* dout, size_t n) {
  const size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x;
  if (i >= n) return;
  const float x = inp[i];
  const float u = kS2P * (x + kC * x * x * x);
  const float s = 1.0f / (1.0f + expf(-2.0f * u));
  const float du = kS2P * (1.0f + 3.0f * kC * x * x);
  dinp[i] += dout[i] * (s + x * 2.0f * s * (1.0f - s) * du);
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

__global__ void add_kernel(float* y, const float* x, size_t n) {
  const size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x;
  if (i < n) y[i] += x[i];
}

}  // namespace

void gelu_forward(float* out, const float* inp, size_t n, cudaStream_t stream) {
  if (n == 0) return;
  gelu_forward_kernel<<<ceil_div(n, 256), 256, 0, stream>>>(out, inp, n);
  SCORE_CUDA_LAUNCH_CHECK();
}
void gelu_backward(float* dinp, const float* inp, const float* dout, size_t n, cudaStream_t stream) {
  if (n == 0) return;
  gelu_backward_kernel<<<ceil_div(n, 256), 256, 0, stream>>>(dinp, inp, dout, n);
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
  add_kernel<<<ceil_div(n, 256), 256, 0, stream>>>(y, x, n);
  SCORE_CUDA_LAUNCH_CHECK();
}

}  // namespace score::cuda
