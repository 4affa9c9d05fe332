// Attention of individual rows against the KV cache: the prefill and decode
// steps of generation. No backward (generation is not differentiated), so
// nothing is saved: one pass computes scores, softmax and the weighted sum.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "cpu/kernels.h"
#include "cpu/vmath.h"

namespace score::cpu {
namespace {

// The row primitives: vectorised (run-time dispatched) for float, plain for double.
inline double dot(const float* a, const float* b, int n) { return vdot_f32(a, b, n); }
inline double dot(const double* a, const double* b, int n) {
  double s = 0;
  for (int i = 0; i < n; i++) s += a[i] * b[i];
  return s;
}
inline float row_max(const float* x, int n) { return vmax_f32(x, n); }
inline double row_max(const double* x, int n) { return *std::max_element(x, x + n); }
inline double exp_sum(float* x, int n, float m) { return vexp_sum_f32(x, n, m, nullptr); }
inline double exp_sum(double* x, int n, double m) {
  double s = 0;
  for (int i = 0; i < n; i++) s += (x[i] = std::exp(x[i] - m));
  return s;
}
// o (n) += w * v (n)
SCORE_CLONES void axpy_f32(float* o, const float* v, float w, int n) {
  for (int i = 0; i < n; i++) o[i] += w * v[i];
}
inline void axpy(float* o, const float* v, float w, int n) { axpy_f32(o, v, w, n); }
inline void axpy(double* o, const double* v, double w, int n) {
  for (int i = 0; i < n; i++) o[i] += w * v[i];
}

}  // namespace

template <typename F>
void attention_cached_forward(F* out, const F* qkv, const F* kcache, const F* vcache,
                              const int32_t* slot, const int32_t* pos, int N, int QKV, int H,
                              int KVH, int hd, int len) {
  const int group = H / KVH;  // query heads per kv head (grouped-query attention)
  const F scale = F(1) / std::sqrt(F(hd));
#pragma omp parallel
  {
    std::vector<F> score(static_cast<size_t>(len));  // (len) one row's scores, per thread
#pragma omp for collapse(2) schedule(dynamic, 1)
    for (int r = 0; r < N; r++) {
      for (int h = 0; h < H; h++) {
        const int p = pos[r], kvh = h / group;
        const F* q = qkv + static_cast<size_t>(r) * QKV + static_cast<size_t>(h) * hd;   // (hd)
        const size_t base = (static_cast<size_t>(slot[r]) * KVH + kvh) * len * hd;
        const F* K = kcache + base;  // (len, hd)
        const F* V = vcache + base;  // (len, hd)
        for (int t = 0; t <= p; t++)
          score[t] = static_cast<F>(dot(q, K + static_cast<size_t>(t) * hd, hd)) * scale;
        const F mx = row_max(score.data(), p + 1);
        const F inv = static_cast<F>(1.0 / exp_sum(score.data(), p + 1, mx));
        F* o = out + static_cast<size_t>(r) * H * hd + static_cast<size_t>(h) * hd;  // (hd)
        std::fill(o, o + hd, F(0));
        for (int t = 0; t <= p; t++) axpy(o, V + static_cast<size_t>(t) * hd, score[t] * inv, hd);
      }
    }
  }
}

template void attention_cached_forward<float>(float*, const float*, const float*, const float*,
                                              const int32_t*, const int32_t*, int, int, int, int,
                                              int, int);
template void attention_cached_forward<double>(double*, const double*, const double*,
                                               const double*, const int32_t*, const int32_t*, int,
                                               int, int, int, int, int);

}  // namespace score::cpu
