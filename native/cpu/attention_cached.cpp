// Attention of individual rows against the KV cache: the prefill and decode
// steps of generation. No backward (generation is not differentiated), so
// nothing is saved: one pass computes scores, softmax and the weighted sum.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "cpu/gemm.h"
#include "cpu/kernels.h"
#include "cpu/vmath.h"

namespace score::cpu {
namespace {

// o (hd) = sum over t < n of w[t] * V[t] (hd), V rows ld apart.
void weighted_rows(float* o, const float* w, const float* V, int n, int hd, int ld) {
  vweighted_sum_f32(o, w, V, static_cast<size_t>(n), static_cast<size_t>(hd), static_cast<size_t>(ld));
}
void weighted_rows(double* o, const double* w, const double* V, int n, int hd, int ld) {
  std::fill(o, o + hd, 0.0);
  for (int t = 0; t < n; t++)
    for (int d = 0; d < hd; d++) o[d] += w[t] * V[static_cast<size_t>(t) * ld + d];
}
inline double row_max(const float* x, int n) { return vmax_f32(x, n); }
inline double row_max(const double* x, int n) { return *std::max_element(x, x + n); }
inline double exp_sum(float* x, int n, double m) { return vexp_sum_f32(x, n, static_cast<float>(m), nullptr); }
inline double exp_sum(double* x, int n, double m) {
  double s = 0;
  for (int i = 0; i < n; i++) s += (x[i] = std::exp(x[i] - m));
  return s;
}

}  // namespace

// One unit of work is a (row, kv head) pair: the `group` query heads that share the kv
// head's cached keys and values are one small GEMM against them (M = group), so each
// key row is read once per unit. Scores in float like the training attention's GEMMs.
template <typename F>
void attention_cached_forward(F* out, const F* qkv, const F* kcache, const F* vcache,
                              const int32_t* slot, const int32_t* pos, int N, int QKV, int H,
                              int KVH, int hd, int len) {
  const int group = H / KVH;  // query heads per kv head (grouped-query attention)
  const double scale = 1.0 / std::sqrt(static_cast<double>(hd));
#pragma omp parallel
  {
    std::vector<F> score(static_cast<size_t>(group) * len);  // (group, len) this unit's scores
    GemmScratch scratch;  // this thread's packing buffers (non-AVX-512 GEMM path)
#pragma omp for collapse(2) schedule(dynamic, 1)
    for (int r = 0; r < N; r++) {
      for (int kvh = 0; kvh < KVH; kvh++) {
        const int n = pos[r] + 1;  // keys 0..pos[r]
        const F* q = qkv + static_cast<size_t>(r) * QKV + static_cast<size_t>(kvh) * group * hd;  // (group, hd)
        const size_t base = (static_cast<size_t>(slot[r]) * KVH + kvh) * len * hd;
        const F* K = kcache + base;  // (len, hd)
        const F* V = vcache + base;  // (len, hd)
        // S (group, n) = Q (group, hd) K[0:n]^T
        gemm(group, n, hd, q, hd, 1, K, 1, hd, score.data(), len, false, static_cast<const F*>(nullptr), &scratch);
        for (int g = 0; g < group; g++) {
          F* s = score.data() + static_cast<size_t>(g) * len;  // (n)
          for (int t = 0; t < n; t++) s[t] = static_cast<F>(s[t] * scale);
          const double inv = 1.0 / exp_sum(s, n, row_max(s, n));
          for (int t = 0; t < n; t++) s[t] = static_cast<F>(s[t] * inv);
          // O (hd) = P (n) V[0:n]
          weighted_rows(out + static_cast<size_t>(r) * H * hd + static_cast<size_t>(kvh * group + g) * hd, s, V, n, hd, hd);
        }
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
