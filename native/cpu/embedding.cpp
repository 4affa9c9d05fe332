// Token (+ learned position) embeddings.

#include "cpu/kernels.h"
#include "cpu/parallel.h"

namespace score::cpu {

template <typename F>
void embedding_forward(F* out, const int32_t* tokens, const int32_t* pos, const F* wte, const F* wpe,
                       int N, int C) {
  // out (N, C) = wte[tokens[n]] (+ wpe[pos[n]])
  parallel_for(N, static_cast<double>(N) * C > 65536, [&](int n) {
    F* o = out + static_cast<size_t>(n) * C;
    const F* t = wte + static_cast<size_t>(tokens[n]) * C;
    if (wpe) {
      const F* p = wpe + static_cast<size_t>(pos[n]) * C;
      for (int c = 0; c < C; ++c) o[c] = t[c] + p[c];
    } else {
      for (int c = 0; c < C; ++c) o[c] = t[c];
    }
  });
}

template <typename F>
void embedding_backward(F* dwte, F* dwpe, const F* dout, const int32_t* tokens, const int32_t* pos,
                        int N, int C) {
  // Scatter-add of dout (N, C) into dwte (V, C) / dwpe (maxT, C). Tokens repeat, so rows
  // would race; instead each thread owns a range of channels and walks all rows in order
  // (no races, deterministic summation order).
  parallel_team(static_cast<double>(N) * C > 65536, [&](int nth, int tid) {
    const int c0 = static_cast<int>(static_cast<long long>(C) * tid / nth);
    const int c1 = static_cast<int>(static_cast<long long>(C) * (tid + 1) / nth);
    for (int n = 0; n < N; ++n) {
      const F* d = dout + static_cast<size_t>(n) * C;
      if (dwte) {
        F* t = dwte + static_cast<size_t>(tokens[n]) * C;
        for (int c = c0; c < c1; ++c) t[c] += d[c];
      }
      if (dwpe) {
        F* p = dwpe + static_cast<size_t>(pos[n]) * C;
        for (int c = c0; c < c1; ++c) p[c] += d[c];
      }
    }
  });
}

template void embedding_forward<float>(float*, const int32_t*, const int32_t*, const float*,
                                       const float*, int, int);
template void embedding_forward<double>(double*, const int32_t*, const int32_t*, const double*,
                                        const double*, int, int);
template void embedding_backward<float>(float*, float*, const float*, const int32_t*,
                                        const int32_t*, int, int);
template void embedding_backward<double>(double*, double*, const double*, const int32_t*,
                                         const int32_t*, int, int);

}  // namespace score::cpu
