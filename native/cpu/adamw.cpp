// AdamW (torch.optim.AdamW semantics, decoupled weight decay) and the sum of squares
// used for global-norm gradient clipping.
#include <cmath>

#include "cpu/kernels.h"
#include "cpu/vmath.h"

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
  const long long chunks = static_cast<long long>((n + kChunk - 1) / kChunk);
#pragma omp parallel for schedule(static) if (chunks > 2)
  for (long long ch = 0; ch < chunks; ++ch) {
    const size_t i0 = static_cast<size_t>(ch) * kChunk, len = std::min(kChunk, n - i0);
    adamw_chunk(params + i0, grads + i0, m + i0, v + i0, len, beta1, beta2, eps, decay, step,
                inv_sqrt_bc2, grad_scale);
  }
}

double sum_squares(const float* x, size_t n) {
  const long long chunks = static_cast<long long>((n + kChunk - 1) / kChunk);
  double total = 0.0;
  // Chunk sums are added in a fixed order per thread count; the reduction is in double.
#pragma omp parallel for schedule(static) reduction(+ : total) if (chunks > 2)
  for (long long ch = 0; ch < chunks; ++ch) {
    const size_t i0 = static_cast<size_t>(ch) * kChunk;
    total += sum_squares_chunk(x + i0, std::min(kChunk, n - i0));
  }
  return total;
}

}  // namespace score::cpu
