// Attention of individual rows against the KV cache: the prefill and decode
// steps of generation. No backward (generation is not differentiated), so
// nothing is saved: one pass computes scores, softmax and the weighted sum.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "cpu/kernels.h"

namespace score::cpu {

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
        F mx = -INFINITY;
        for (int t = 0; t <= p; t++) {
          F s = 0;
          for (int i = 0; i < hd; i++) s += q[i] * K[static_cast<size_t>(t) * hd + i];
          s *= scale;
          score[t] = s;
          mx = std::max(mx, s);
        }
        double sum = 0;
        for (int t = 0; t <= p; t++) {
          score[t] = std::exp(score[t] - mx);
          sum += score[t];
        }
        const F inv = static_cast<F>(1.0 / sum);
        F* o = out + static_cast<size_t>(r) * H * hd + static_cast<size_t>(h) * hd;  // (hd)
        std::fill(o, o + hd, F(0));
        for (int t = 0; t <= p; t++) {
          const F w = score[t] * inv;
          const F* v = V + static_cast<size_t>(t) * hd;
          for (int i = 0; i < hd; i++) o[i] += w * v[i];
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
