// AdamW (torch.optim.AdamW semantics, decoupled weight decay) and the sum of squares
// used for global-norm gradient clipping.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "cpu/kernels.h"
#include "cpu/parallel.h"
#include "cpu/vmath.h"
#include "cpu/x86.h"

namespace score::cpu {
namespace {

constexpr size_t kChunk = 16384;  // elements per parallel work item

// One chunk of the update, in the order torch applies it: decay p by (1 - lr wd) first,
// then p -= (lr / bc1) * m / (sqrt(v) / sqrt(bc2) + eps).
SCORE_CLONES void adamw_chunk(float* p, const float* grads, float* m, float* v, size_t n,
                              float beta1, float beta2, float eps, float decay, float step,
                              float inv_sqrt_bc2, float grad_scale) {
  for (size_t i = 0; i < n; ++i) {
    const float g = grads[i] * grad_scale;
    const float mi = beta1 * m[i] + (1.0f - beta1) * g;
    const float vi = beta2 * v[i] + (1.0f - beta2) * g * g;
    m[i] = mi;
    v[i] = vi;
    p[i] = p[i] * decay - step * mi / (std::sqrt(vi) * inv_sqrt_bc2 + eps);
  }
}

#ifdef SCORE_X86
// The same update, 16 lanes at a time. (The portable loop above does not vectorise: with
// errno-setting sqrt, GCC keeps a scalar branch per element.)
__attribute__((target("avx512f"))) void adamw_chunk_avx512(float* p, const float* grads, float* m,
                                                           float* v, size_t n, float beta1,
                                                           float beta2, float eps, float decay,
                                                           float step, float inv_sqrt_bc2,
                                                           float grad_scale) {
  const __m512 b1 = _mm512_set1_ps(beta1), b2 = _mm512_set1_ps(beta2);
  const __m512 c1 = _mm512_set1_ps(1.0f - beta1), c2 = _mm512_set1_ps(1.0f - beta2);
  const __m512 ev = _mm512_set1_ps(eps), dv = _mm512_set1_ps(decay), sv = _mm512_set1_ps(step);
  const __m512 iv = _mm512_set1_ps(inv_sqrt_bc2), gs = _mm512_set1_ps(grad_scale);
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512 g = _mm512_mul_ps(_mm512_loadu_ps(grads + i), gs);
    const __m512 mi = _mm512_fmadd_ps(b1, _mm512_loadu_ps(m + i), _mm512_mul_ps(c1, g));
    const __m512 vi = _mm512_fmadd_ps(b2, _mm512_loadu_ps(v + i), _mm512_mul_ps(_mm512_mul_ps(c2, g), g));
    _mm512_storeu_ps(m + i, mi);
    _mm512_storeu_ps(v + i, vi);
    const __m512 den = _mm512_fmadd_ps(_mm512_sqrt_ps(vi), iv, ev);
    const __m512 pi = _mm512_mul_ps(_mm512_loadu_ps(p + i), dv);
    _mm512_storeu_ps(p + i, _mm512_sub_ps(pi, _mm512_div_ps(_mm512_mul_ps(sv, mi), den)));
  }
  adamw_chunk(p + i, grads + i, m + i, v + i, n - i, beta1, beta2, eps, decay, step, inv_sqrt_bc2,
              grad_scale);
}
#endif

SCORE_CLONES double sum_squares_chunk(const float* x, size_t n) {
  double s = 0.0;
#pragma omp simd reduction(+ : s)
  for (size_t i = 0; i < n; ++i) s += static_cast<double>(x[i]) * x[i];
  return s;
}

}  // namespace

void adamw_update(float* params, const float* grads, float* m, float* v, size_t n, float lr,
                  float beta1, float beta2, float eps, float weight_decay, int t, float grad_scale) {
  // Bias corrections in double, as torch computes them (Python floats).
  const double bc1 = 1.0 - std::pow(static_cast<double>(beta1), t);
  const double bc2 = 1.0 - std::pow(static_cast<double>(beta2), t);
  const float step = static_cast<float>(lr / bc1);
  const float inv_sqrt_bc2 = static_cast<float>(1.0 / std::sqrt(bc2));
  const float decay = static_cast<float>(1.0 - static_cast<double>(lr) * weight_decay);
  auto* chunk_fn = adamw_chunk;
#ifdef SCORE_X86
  if (__builtin_cpu_supports("avx512f")) chunk_fn = adamw_chunk_avx512;
#endif
  const long long chunks = static_cast<long long>((n + kChunk - 1) / kChunk);
  parallel_for(chunks, chunks > 2, [&](long long ch) {
    const size_t i0 = static_cast<size_t>(ch) * kChunk, len = std::min(kChunk, n - i0);
    chunk_fn(params + i0, grads + i0, m + i0, v + i0, len, beta1, beta2, eps, decay, step,
             inv_sqrt_bc2, grad_scale);
  });
}

double sum_squares(const float* x, size_t n) {
  const long long chunks = static_cast<long long>((n + kChunk - 1) / kChunk);
  // Each thread sums a contiguous range of chunks; the partial sums are added in thread
  // order, in double, so the result depends on the thread count only.
  std::vector<double> part(static_cast<size_t>(omp_get_max_threads()), 0.0);
  parallel_team(chunks > 2, [&](int nth, int tid) {
    double s = 0.0;
    for (long long ch = chunks * tid / nth; ch < chunks * (tid + 1) / nth; ++ch) {
      const size_t i0 = static_cast<size_t>(ch) * kChunk;
      s += sum_squares_chunk(x + i0, std::min(kChunk, n - i0));
    }
    part[static_cast<size_t>(tid)] = s;
  });
  double total = 0.0;
  for (double p : part) total += p;
  return total;
}

}  // namespace score::cpu
