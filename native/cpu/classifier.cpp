// The lm_head fused with log-softmax, the per-token log-probability of the target, the
// entropy and (optionally) the backward pass, without ever holding an (N, V) tensor.
//
// Rows with a target are gathered kRows at a time into a chunk; per chunk:
//   logits (m, V) = h (m, C) @ wlm^T                       [GEMM]
//   per row: max, e = exp(logits - max) in place, s = sum e, sum e*(logits - max)
//            logp = logit[target] - max - log s;  entropy = log s - sum e z / s
//   g = coef(n, logp)  (serially, in row order: the callback need not be thread-safe)
//   dlogits = g (onehot(target) - e / s) in place
//   dhidden[rows] += dlogits @ wlm (V, C);  dwlm += dlogits^T @ h   [GEMMs]
// Chunk size: every chunk re-reads wlm (V, C) three times (one of them a transposing
// pack) and reads + writes dwlm once, so larger chunks amortise that traffic; but the
// (chunk, V) logits are swept four times per chunk and should stay in the last-level
// cache. 256 rows (8 MiB at V = 8192) measured best on Zen 5; for large vocabularies the
// chunk shrinks to keep the scratch near 32 MiB, but never below 128 rows (Qwen2's
// V = 151936: 78 MiB), below which the wlm traffic dominates.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <vector>

#include "cpu/gemm.h"
#include "cpu/kernels.h"
#include "cpu/parallel.h"
#include "cpu/vmath.h"

namespace score::cpu {
namespace {

constexpr size_t kScratchFloats = size_t(8) << 20;  // (chunk, V) logits: 32 MiB in float
constexpr int kMaxRows = 256, kMinRows = 128;

struct RowStats {
  double max, sum, sum_ez;  // max logit, sum of e = exp(z), sum of e * z, with z = logit - max
};

// x (V) logits -> e = exp(x - max) in place.
RowStats row_stats(float* x, int V) {
  const float mx = vmax_f32(x, V);
  RowStats st{mx, 0.0, 0.0};
  st.sum = vexp_sum_f32(x, V, mx, &st.sum_ez);
  return st;
}
RowStats row_stats(double* x, int V) {
  double mx = -std::numeric_limits<double>::infinity();
  for (int v = 0; v < V; ++v) mx = std::max(mx, x[v]);
  RowStats st{mx, 0.0, 0.0};
  for (int v = 0; v < V; ++v) {
    const double z = x[v] - mx, e = std::exp(z);
    x[v] = e;
    st.sum += e;
    st.sum_ez += e * z;
  }
  return st;
}

SCORE_CLONES void scale_f32(float* x, int V, float a) {
#pragma omp simd
  for (int v = 0; v < V; ++v) x[v] *= a;
}
void scale_row(float* x, int V, float a) { scale_f32(x, V, a); }
void scale_row(double* x, int V, double a) {
  for (int v = 0; v < V; ++v) x[v] *= a;
}

}  // namespace

template <typename F>
void classifier_forward_backward(F* logp, F* entropy, F* dhidden, F* dwlm, const F* hidden,
                                 const F* wlm, const int32_t* target, int N, int C, int V,
                                 const std::function<double(int, double)>* coef) {
  const bool grad = coef && *coef && (dhidden || dwlm);
  // Never more rows than there are (small calls get a small scratch).
  const int chunk = std::max(1, std::min<int>(N, static_cast<int>(std::clamp<size_t>(
                                                     kScratchFloats / std::max(V, 1), kMinRows, kMaxRows))));
  // (m, V) logits, then e, then dlogits; not zero-initialised (the GEMM writes it).
  std::unique_ptr<F[]> logits_mem(new F[static_cast<size_t>(chunk) * V]);
  F* const logits = logits_mem.get();
  std::vector<F> h(static_cast<size_t>(chunk) * C);       // (m, C) hidden rows of the chunk
  std::vector<F> dh(grad && dhidden ? static_cast<size_t>(chunk) * C : 0);  // (m, C)
  std::vector<int> rows(chunk);
  std::vector<RowStats> st(chunk);
  std::vector<double> lp(chunk), g(chunk);

  int n = 0;
  while (n < N) {
    // Gather up to `chunk` rows that have a target; the others get logp = entropy = 0.
    int m = 0;
    for (; n < N && m < chunk; ++n) {
      if (target[n] < 0) {
        logp[n] = F(0);
        if (entropy) entropy[n] = F(0);
        continue;
      }
      rows[m] = n;
      std::memcpy(h.data() + static_cast<size_t>(m) * C, hidden + static_cast<size_t>(n) * C,
                  sizeof(F) * C);
      ++m;
    }
    if (m == 0) break;
    const bool par = static_cast<double>(m) * V > 65536;

    // logits (m, V) = h (m, C) @ wlm^T: B(k, j) = wlm[j*C + k]
    gemm(m, V, C, h.data(), C, 1, wlm, 1, C, logits, V, false, static_cast<const F*>(nullptr));

    parallel_for(m, par, [&](int r) {
      F* x = logits + static_cast<size_t>(r) * V;
      const double lt = x[target[rows[r]]];
      st[r] = row_stats(x, V);
      const double log_s = std::log(st[r].sum);
      lp[r] = lt - st[r].max - log_s;
      logp[rows[r]] = static_cast<F>(lp[r]);
      if (entropy) entropy[rows[r]] = static_cast<F>(log_s - st[r].sum_ez / st[r].sum);
    });
    if (!grad) continue;

    for (int r = 0; r < m; ++r) g[r] = (*coef)(rows[r], lp[r]);

    // dlogits = g (onehot - softmax): -g e / s everywhere, and at the target
    // g (1 - e_t / s) = g (s - e_t) / s, formed in double to avoid cancellation when p_t ~ 1.
    parallel_for(m, par, [&](int r) {
      F* x = logits + static_cast<size_t>(r) * V;
      const int t = target[rows[r]];
      const double e_t = x[t];
      scale_row(x, V, static_cast<F>(-g[r] / st[r].sum));
      x[t] = static_cast<F>(g[r] * (st[r].sum - e_t) / st[r].sum);
    });

    if (dhidden) {
      // dh (m, C) = dlogits (m, V) @ wlm (V, C), then scattered back to the rows.
      gemm(m, C, V, logits, V, 1, wlm, C, 1, dh.data(), C, false,
           static_cast<const F*>(nullptr));
      for (int r = 0; r < m; ++r) {
        F* d = dhidden + static_cast<size_t>(rows[r]) * C;
        const F* s = dh.data() + static_cast<size_t>(r) * C;
        for (int c = 0; c < C; ++c) d[c] += s[c];
      }
    }
    if (dwlm) {
      // dwlm (V, C) += dlogits^T (V, m) @ h (m, C): A(i = v, k = r) = dlogits[r*V + v]
      gemm(V, C, m, logits, 1, V, h.data(), C, 1, dwlm, C, true,
           static_cast<const F*>(nullptr));
    }
  }
}

template void classifier_forward_backward<float>(float*, float*, float*, float*, const float*,
                                                 const float*, const int32_t*, int, int, int,
                                                 const std::function<double(int, double)>*);
template void classifier_forward_backward<double>(double*, double*, double*, double*,
                                                  const double*, const double*, const int32_t*,
                                                  int, int, int,
                                                  const std::function<double(int, double)>*);

}  // namespace score::cpu
