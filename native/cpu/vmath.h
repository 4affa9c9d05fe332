// Small helpers shared by the CPU kernels: run-time ISA dispatch for hot float
// loops, a vectorisable single-precision exp, and the row reductions of the softmaxes
// (vmath.cpp).
//
// The build has no -march=native, so templates compile for baseline x86-64
// (SSE2). Hot float loops therefore live in small non-template functions marked
// SCORE_CLONES: GCC compiles them for AVX-512, AVX2+FMA and baseline and picks
// one at load time (ifunc). The OpenMP parallel loop stays in the caller; the
// clone does the work of one row or chunk, so the call overhead is amortised.
#pragma once
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>

#if defined(__x86_64__) && defined(__linux__) && defined(__GNUC__) && !defined(__clang__)
#define SCORE_CLONES \
  __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define SCORE_CLONES
#endif

namespace score::cpu {

// exp(x) in float with <= 2 ulp error on [-87, 88] (measured 1.4 ulp), written
// without branches or calls so that loops over it vectorise. Inputs are clamped
// to [-87, 88]: below, the result is ~1.6e-38 instead of a smaller number or 0
// (harmless where it is used: softmax terms next to a max term of 1, sigmoid);
// above, 1.65e38 instead of overflow.
// Cody-Waite reduction x = n ln2 + r, |r| <= ln2/2, then the Cephes expf polynomial.
inline float fexp(float x) {
  x = std::min(std::max(x, -87.0f), 88.0f);
  // round(x / ln2) by the 1.5 * 2^23 trick (exact for |x / ln2| < 2^22).
  const float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
  const float r = (x - n * 0.693359375f) - n * -2.12194440e-4f;  // ln2 split hi + lo
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  // NaN in, NaN out; a NaN must not reach the float -> int conversion (undefined behaviour).
  // Both are selects, so the loop still vectorises.
  const bool nan = x != x;
  const uint32_t bits = static_cast<uint32_t>(static_cast<int32_t>(nan ? 0.0f : n) + 127) << 23;  // 2^n, n in [-126, 127]
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return nan ? x : p * scale;
}

// Row primitives for the softmaxes (attention, classifier), in float with double
// accumulation; explicitly vectorised (GCC's auto-vectoriser does not handle these
// reductions without -ffast-math) and compiled for AVX-512 / AVX2 / baseline.
// max of x[0..n), n >= 1.
float vmax_f32(const float* x, size_t n);
// x[i] = exp(x[i] - shift) in place (fexp accuracy); returns the sum of the new x[i] in
// double, and if sum_ez is not null stores there the sum of exp(z) * z, z = old x[i] - shift.
double vexp_sum_f32(float* x, size_t n, float shift, double* sum_ez);
// sum of a[i] * b[i], products in float, accumulated in double.
double vdot_f32(const float* a, const float* b, size_t n);
// o[0..d) = sum over t < n of w[t] * v[t * ld + 0..d), accumulated in float registers
// (the weighted sum of value rows in attention against the KV cache).
void vweighted_sum_f32(float* o, const float* w, const float* v, size_t n, size_t d, size_t ld);

}  // namespace score::cpu
