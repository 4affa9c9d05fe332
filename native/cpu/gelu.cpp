// GELU, tanh approximation (GPT-2's gelu_new):
//   gelu(x) = 0.5 x (1 + tanh(u)),  u = sqrt(2/pi) (x + 0.044715 x^3).
// In float it is evaluated as x * sigmoid(2u) = x / (1 + exp(-2u)), the same function
// (0.5 (1 + tanh u) = sigmoid(2u)) without tanh's cancellation near -1 and with the
// vectorisable fexp; the double path (gradient checks) uses the tanh formula as written.
#include <algorithm>
#include <cmath>

#include "cpu/kernels.h"
#include "cpu/parallel.h"
#include "cpu/vmath.h"

namespace score::cpu {
namespace {

constexpr double kS2P = 0.7978845608028654;  // sqrt(2/pi)
constexpr double kC = 0.044715;
constexpr size_t kChunk = 4096;  // elements per parallel work item

SCORE_CLONES void gelu_fwd_f32(float* out, const float* inp, size_t n) {
  const float s2p = static_cast<float>(kS2P), c = static_cast<float>(kC);
#pragma omp simd
  for (size_t i = 0; i < n; ++i) {
    const float x = inp[i];
    const float u = s2p * (x + c * x * x * x);
    out[i] = x / (1.0f + fexp(-2.0f * u));
  }
}

// d gelu / dx = sigmoid(2u) + x * 2 sigmoid(2u) (1 - sigmoid(2u)) * du/dx,
// du/dx = sqrt(2/pi) (1 + 3 * 0.044715 x^2)   [0.5 sech^2(u) = 2 s (1 - s) for s = sigmoid(2u)]
SCORE_CLONES void gelu_bwd_f32(float* dinp, const float* inp, const float* dout, size_t n) {
  const float s2p = static_cast<float>(kS2P), c = static_cast<float>(kC);
#pragma omp simd
  for (size_t i = 0; i < n; ++i) {
    const float x = inp[i];
    const float u = s2p * (x + c * x * x * x);
    const float s = 1.0f / (1.0f + fexp(-2.0f * u));
    const float du = s2p * (1.0f + 3.0f * c * x * x);
    dinp[i] += dout[i] * (s + x * 2.0f * s * (1.0f - s) * du);
  }
}

void gelu_fwd(float* out, const float* inp, size_t n) { gelu_fwd_f32(out, inp, n); }
void gelu_bwd(float* dinp, const float* inp, const float* dout, size_t n) {
  gelu_bwd_f32(dinp, inp, dout, n);
}
void gelu_fwd(double* out, const double* inp, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    const double x = inp[i];
    out[i] = 0.5 * x * (1.0 + std::tanh(kS2P * (x + kC * x * x * x)));
  }
}
void gelu_bwd(double* dinp, const double* inp, const double* dout, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    const double x = inp[i];
    const double th = std::tanh(kS2P * (x + kC * x * x * x));
    const double du = kS2P * (1.0 + 3.0 * kC * x * x);
    dinp[i] += dout[i] * (0.5 * (1.0 + th) + 0.5 * x * (1.0 - th * th) * du);
  }
}

}  // namespace

template <typename F>
void gelu_forward(F* out, const F* inp, size_t n) {
  const long long chunks = static_cast<long long>((n + kChunk - 1) / kChunk);
  parallel_for(chunks, chunks > 4, [&](long long ch) {
    const size_t i0 = static_cast<size_t>(ch) * kChunk;
    gelu_fwd(out + i0, inp + i0, std::min(kChunk, n - i0));
  });
}

template <typename F>
void gelu_backward(F* dinp, const F* inp, const F* dout, size_t n) {
  const long long chunks = static_cast<long long>((n + kChunk - 1) / kChunk);
  parallel_for(chunks, chunks > 4, [&](long long ch) {
    const size_t i0 = static_cast<size_t>(ch) * kChunk;
    gelu_bwd(dinp + i0, inp + i0, dout + i0, std::min(kChunk, n - i0));
  });
}

template void gelu_forward<float>(float*, const float*, size_t);
template void gelu_forward<double>(double*, const double*, size_t);
template void gelu_backward<float>(float*, const float*, const float*, size_t);
template void gelu_backward<double>(double*, const double*, const double*, size_t);

}  // namespace score::cpu
