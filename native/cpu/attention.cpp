// Causal multi-head attention with grouped-query heads (repeat_kv semantics: query head
// h reads kv head h / (H / KVH)), scale 1/sqrt(hd), softmax with max subtraction.
//
// Per (batch, head) the work is three small matrix products, so it runs on the packed
// GEMM (gemm.h) rather than dot-product loops:
//   S = Q K^T (T, T);  P = softmax(scale * S) row-wise under the causal mask;  O = P V.
// Causality is exploited by blocks of kRB query rows: rows [r0, r1) only need keys [0, r1).
// Threads take whole (batch, head) units (the GEMMs inside then run on one thread); when
// there are fewer units than threads, units run in turn and each GEMM is threaded.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "cpu/gemm.h"
#include "cpu/kernels.h"
#include "cpu/vmath.h"

namespace score::cpu {
namespace {

constexpr int kRB = 64;  // causal row block

inline float exp_(float x) { return fexp(x); }
inline double exp_(double x) { return std::exp(x); }

// Row t of the scores (T): p[s] = softmax(scale * s[0..t])[s] for s <= t, 0 for s > t.
template <typename F>
[[gnu::always_inline]] inline void softmax_row(F* a, int t, int T, F scale) {
  F mx = -std::numeric_limits<F>::infinity();
#pragma omp simd reduction(max : mx)
  for (int s = 0; s <= t; ++s) {
    a[s] *= scale;
    mx = std::max(mx, a[s]);
  }
  double sum = 0.0;
#pragma omp simd reduction(+ : sum)
  for (int s = 0; s <= t; ++s) {
    const F e = exp_(a[s] - mx);
    a[s] = e;
    sum += e;
  }
  const F inv = static_cast<F>(1.0 / sum);
  for (int s = 0; s <= t; ++s) a[s] *= inv;
  for (int s = t + 1; s < T; ++s) a[s] = F(0);
}

// Row t of the softmax backward: with dP (in ds, columns [0, ncols)) and P (att row),
//   ds[s] = scale * P[s] * (dP[s] - sum_s' P[s'] dP[s'])  for s <= t,  0 for t < s < ncols.
template <typename F>
[[gnu::always_inline]] inline void dsoftmax_row(F* ds, const F* p, int t, int ncols, F scale) {
  double dot = 0.0;
#pragma omp simd reduction(+ : dot)
  for (int s = 0; s <= t; ++s) dot += p[s] * ds[s];
  const F d = static_cast<F>(dot);
#pragma omp simd
  for (int s = 0; s <= t; ++s) ds[s] = scale * p[s] * (ds[s] - d);
  for (int s = t + 1; s < ncols; ++s) ds[s] = F(0);
}

// Float rows run in AVX-512 / AVX2 clones; double rows as plain code.
SCORE_CLONES void softmax_rows_f32(float* a, int t0, int t1, int T, float scale) {
  for (int t = t0; t < t1; ++t) softmax_row(a + static_cast<size_t>(t) * T, t, T, scale);
}
void softmax_rows(double* a, int t0, int t1, int T, double scale) {
  for (int t = t0; t < t1; ++t) softmax_row(a + static_cast<size_t>(t) * T, t, T, scale);
}
void softmax_rows(float* a, int t0, int t1, int T, float scale) {
  softmax_rows_f32(a, t0, t1, T, scale);
}
SCORE_CLONES void dsoftmax_rows_f32(float* ds, const float* p, int t0, int t1, int T, int ncols,
                                    float scale) {
  for (int t = t0; t < t1; ++t)
    dsoftmax_row(ds + static_cast<size_t>(t) * T, p + static_cast<size_t>(t) * T, t, ncols, scale);
}
void dsoftmax_rows(double* ds, const double* p, int t0, int t1, int T, int ncols, double scale) {
  for (int t = t0; t < t1; ++t)
    dsoftmax_row(ds + static_cast<size_t>(t) * T, p + static_cast<size_t>(t) * T, t, ncols, scale);
}
void dsoftmax_rows(float* ds, const float* p, int t0, int t1, int T, int ncols, float scale) {
  dsoftmax_rows_f32(ds, p, t0, t1, T, ncols, scale);
}

}  // namespace

template <typename F>
void attention_forward(F* out, F* att, const F* qkv, int B, int T, int H, int KVH, int hd) {
  const int QKV = (H + 2 * KVH) * hd, Q = H * hd, group = H / KVH;
  const F scale = static_cast<F>(1.0 / std::sqrt(static_cast<double>(hd)));
  const int units = B * H;
  const bool outer = units >= omp_get_max_threads() && static_cast<double>(units) * T * T * hd > 1e5;
#pragma omp parallel for schedule(dynamic, 1) if (outer)
  for (int u = 0; u < units; ++u) {
    const int b = u / H, h = u % H, kvh = h / group;
    const F* base = qkv + static_cast<size_t>(b) * T * QKV;
    const F* q = base + static_cast<size_t>(h) * hd;            // (T, hd), row stride QKV
    const F* k = base + static_cast<size_t>(H + kvh) * hd;      // (T, hd)
    const F* v = base + static_cast<size_t>(H + KVH + kvh) * hd;  // (T, hd)
    F* a = att + static_cast<size_t>(b * H + h) * T * T;        // (T, T)
    F* o = out + static_cast<size_t>(b) * T * Q + static_cast<size_t>(h) * hd;  // (T, hd), stride Q
    for (int r0 = 0; r0 < T; r0 += kRB) {
      const int r1 = std::min(T, r0 + kRB), m = r1 - r0;
      // S[r0:r1, 0:r1] = Q[r0:r1] K[0:r1]^T
      gemm(m, r1, hd, q + static_cast<size_t>(r0) * QKV, QKV, 1, k, 1, QKV,
           a + static_cast<size_t>(r0) * T, T, false, static_cast<const F*>(nullptr));
      softmax_rows(a, r0, r1, T, scale);
      // O[r0:r1] = P[r0:r1, 0:r1] V[0:r1]
      gemm(m, hd, r1, a + static_cast<size_t>(r0) * T, T, 1, v, QKV, 1,
           o + static_cast<size_t>(r0) * Q, Q, false, static_cast<const F*>(nullptr));
    }
  }
}

// With P the saved probabilities and dO = dout for one head:
//   dP = dO V^T;  dS = scale * P * (dP - rowsum(P * dP));
//   dQ += dS K;   dK += dS^T Q;   dV += P^T dO.
// dK and dV of a kv head collect from all query heads of its group, so a unit is a
// (batch, kv head) pair that walks its query heads in turn: no races, deterministic.
template <typename F>
void attention_backward(F* dqkv, const F* dout, const F* qkv, const F* att, int B, int T, int H,
                        int KVH, int hd) {
  const int QKV = (H + 2 * KVH) * hd, Q = H * hd, group = H / KVH;
  const F scale = static_cast<F>(1.0 / std::sqrt(static_cast<double>(hd)));
  const int units = B * KVH;
  const bool outer = units >= omp_get_max_threads() && static_cast<double>(units) * T * T * hd > 1e5;
#pragma omp parallel if (outer)
  {
    std::vector<F> ds(static_cast<size_t>(T) * T);  // dP, then dS, of one head (T, T)
#pragma omp for schedule(dynamic, 1)
    for (int u = 0; u < units; ++u) {
      const int b = u / KVH, kvh = u % KVH;
      const F* base = qkv + static_cast<size_t>(b) * T * QKV;
      F* dbase = dqkv + static_cast<size_t>(b) * T * QKV;
      const F* k = base + static_cast<size_t>(H + kvh) * hd;
      const F* v = base + static_cast<size_t>(H + KVH + kvh) * hd;
      F* dk = dbase + static_cast<size_t>(H + kvh) * hd;
      F* dv = dbase + static_cast<size_t>(H + KVH + kvh) * hd;
      for (int h = kvh * group; h < (kvh + 1) * group; ++h) {
        const F* q = base + static_cast<size_t>(h) * hd;
        F* dq = dbase + static_cast<size_t>(h) * hd;
        const F* p = att + static_cast<size_t>(b * H + h) * T * T;
        const F* dO = dout + static_cast<size_t>(b) * T * Q + static_cast<size_t>(h) * hd;
        for (int r0 = 0; r0 < T; r0 += kRB) {
          const int r1 = std::min(T, r0 + kRB), m = r1 - r0;
          F* dsr = ds.data() + static_cast<size_t>(r0) * T;
          // dP[r0:r1, 0:r1] = dO[r0:r1] V[0:r1]^T
          gemm(m, r1, hd, dO + static_cast<size_t>(r0) * Q, Q, 1, v, 1, QKV, dsr, T, false,
               static_cast<const F*>(nullptr));
          dsoftmax_rows(ds.data(), p, r0, r1, T, r1, scale);
          // dQ[r0:r1] += dS[r0:r1, 0:r1] K[0:r1]
          gemm(m, hd, r1, dsr, T, 1, k, QKV, 1, dq + static_cast<size_t>(r0) * QKV, QKV, true,
               static_cast<const F*>(nullptr));
        }
        // Keys [c0, c1) receive from query rows t >= c0 (dS and P are zero above the diagonal
        // inside the diagonal block: dsoftmax_rows zeroed dS there, the forward zeroed P).
        for (int c0 = 0; c0 < T; c0 += kRB) {
          const int c1 = std::min(T, c0 + kRB), n = c1 - c0, rows = T - c0;
          const size_t off = static_cast<size_t>(c0) * T + c0;
          // dK[c0:c1] += dS[c0:T, c0:c1]^T Q[c0:T]
          gemm(n, hd, rows, ds.data() + off, 1, T, q + static_cast<size_t>(c0) * QKV, QKV, 1,
               dk + static_cast<size_t>(c0) * QKV, QKV, true, static_cast<const F*>(nullptr));
          // dV[c0:c1] += P[c0:T, c0:c1]^T dO[c0:T]
          gemm(n, hd, rows, p + off, 1, T, dO + static_cast<size_t>(c0) * Q, Q, 1,
               dv + static_cast<size_t>(c0) * QKV, QKV, true, static_cast<const F*>(nullptr));
        }
      }
    }
  }
}

template void attention_forward<float>(float*, float*, const float*, int, int, int, int, int);
template void attention_forward<double>(double*, double*, const double*, int, int, int, int, int);
template void attention_backward<float>(float*, const float*, const float*, const float*, int, int,
                                        int, int, int);
template void attention_backward<double>(double*, const double*, const double*, const double*, int,
                                         int, int, int, int);

}  // namespace score::cpu
