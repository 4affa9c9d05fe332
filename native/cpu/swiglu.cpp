// SwiGLU (Llama / Qwen2 MLP): inp (N, 2F) = [gate | up] per row;
//   out (N, F) = silu(gate) * up,  silu(g) = g * sigmoid(g) = g / (1 + exp(-g)).
#include <cmath>

#include "cpu/kernels.h"
#include "cpu/parallel.h"
#include "cpu/vmath.h"

namespace score::cpu {
namespace {

SCORE_CLONES void swiglu_fwd_row_f32(float* out, const float* gate, const float* up, int Fd) {
#pragma omp simd
  for (int i = 0; i < Fd; ++i) out[i] = gate[i] / (1.0f + fexp(-gate[i])) * up[i];
}

// d out / d gate = up * sigmoid(g) (1 + g (1 - sigmoid(g)));  d out / d up = silu(g).
SCORE_CLONES void swiglu_bwd_row_f32(float* dgate, float* dup, const float* gate, const float* up,
                                     const float* dout, int Fd) {
#pragma omp simd
  for (int i = 0; i < Fd; ++i) {
    const float g = gate[i];
    const float s = 1.0f / (1.0f + fexp(-g));
    dgate[i] += dout[i] * up[i] * s * (1.0f + g * (1.0f - s));
    dup[i] += dout[i] * g * s;
  }
}

void swiglu_fwd_row(float* out, const float* gate, const float* up, int Fd) {
  swiglu_fwd_row_f32(out, gate, up, Fd);
}
void swiglu_bwd_row(float* dgate, float* dup, const float* gate, const float* up, const float* dout,
                    int Fd) {
  swiglu_bwd_row_f32(dgate, dup, gate, up, dout, Fd);
}
void swiglu_fwd_row(double* out, const double* gate, const double* up, int Fd) {
  for (int i = 0; i < Fd; ++i) out[i] = gate[i] / (1.0 + std::exp(-gate[i])) * up[i];
}
void swiglu_bwd_row(double* dgate, double* dup, const double* gate, const double* up,
                    const double* dout, int Fd) {
  for (int i = 0; i < Fd; ++i) {
    const double g = gate[i];
    const double s = 1.0 / (1.0 + std::exp(-g));
    dgate[i] += dout[i] * up[i] * s * (1.0 + g * (1.0 - s));
    dup[i] += dout[i] * g * s;
  }
}

}  // namespace

template <typename F>
void swiglu_forward(F* out, const F* inp, int N, int Fd) {
  parallel_for(N, static_cast<double>(N) * Fd > 16384, [&](int n) {
    const F* gate = inp + static_cast<size_t>(n) * 2 * Fd;
    swiglu_fwd_row(out + static_cast<size_t>(n) * Fd, gate, gate + Fd, Fd);
  });
}

template <typename F>
void swiglu_backward(F* dinp, const F* inp, const F* dout, int N, int Fd) {
  parallel_for(N, static_cast<double>(N) * Fd > 16384, [&](int n) {
    const F* gate = inp + static_cast<size_t>(n) * 2 * Fd;
    F* dgate = dinp + static_cast<size_t>(n) * 2 * Fd;
    swiglu_bwd_row(dgate, dgate + Fd, gate, gate + Fd, dout + static_cast<size_t>(n) * Fd, Fd);
  });
}

template void swiglu_forward<float>(float*, const float*, int, int);
template void swiglu_forward<double>(double*, const double*, int, int);
template void swiglu_backward<float>(float*, const float*, const float*, int, int);
template void swiglu_backward<double>(double*, const double*, const double*, int, int);

}  // namespace score::cpu
