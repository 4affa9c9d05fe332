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

// Row t of the scores (T): p[s] = softmax(scale * s[0..t])[s] for s <= t, 0 for s > t.
void softmax_rows(double* a, int t0, int t1, int T, double scale) {
  for (int t = t0; t < t1; ++t) {
    double* r = a + static_cast<size_t>(t) * T;
    double mx = -std::numeric_limits<double>::infinity();
    for (int s = 0; s <= t; ++s) r[s] *= scale, mx = std::max(mx, r[s]);
    double sum = 0.0;
    for (int s = 0; s <= t; ++s) r[s] = std::exp(r[s] - mx), sum += r[s];
    for (int s = 0; s <= t; ++s) r[s] /= sum;
    for (int s = t + 1; s < T; ++s) r[s] = 0.0;
  }
}
SCORE_CLONES void scale_f32(float* x, int n, float a) {
#pragma omp simd
  for (int i = 0; i < n; ++i) x[i] *= a;
}
void softmax_rows(float* a, int t0, int t1, int T, float scale) {
  for (int t = t0; t < t1; ++t) {
    float* r = a + static_cast<size_t>(t) * T;
    scale_f32(r, t + 1, scale);
    const float mx = vmax_f32(r, t + 1);
    const double sum = vexp_sum_f32(r, t + 1, mx, nullptr);
    scale_f32(r, t + 1, static_cast<float>(1.0 / sum));
    std::fill(r + t + 1, r + T, 0.0f);
  }
}

// Row t of the softmax backward: with dP (in ds, columns [0, ncols)) and P (att row),
//   ds[s] = scale * P[s] * (dP[s] - sum_s' P[s'] dP[s'])  for s <= t,  0 for t < s < ncols.
void dsoftmax_rows(double* ds, const double* p, int t0, int t1, int T, int ncols, double scale) {
  for (int t = t0; t < t1; ++t) {
    double* d = ds + static_cast<size_t>(t) * T;
    const double* pr = p + static_cast<size_t>(t) * T;
    double dot = 0.0;
    for (int s = 0; s <= t; ++s) dot += pr[s] * d[s];
    for (int s = 0; s <= t; ++s) d[s] = scale * pr[s] * (d[s] - dot);
    for (int s = t + 1; s < ncols; ++s) d[s] = 0.0;
  }
}
SCORE_CLONES void dsoftmax_row_f32(float* d, const float* pr, int n, float dot, float scale) {
#pragma omp simd
  for (int s = 0; s < n; ++s) d[s] = scale * pr[s] * (d[s] - dot);
}
void dsoftmax_rows(float* ds, const float* p, int t0, int t1, int T, int ncols, float scale) {
  for (int t = t0; t < t1; ++t) {
    float* d = ds + static_cast<size_t>(t) * T;
    const float* pr = p + static_cast<size_t>(t) * T;
    const float dot = static_cast<float>(vdot_f32(pr, d, t + 1));
    dsoftmax_row_f32(d, pr, t + 1, dot, scale);
    std::fill(d + t + 1, d + ncols, 0.0f);
  }
}

}  // namespace

template <typename F>
void attention_forward(F* out, F* att, const F* qkv, int B, int T, int H, int KVH, int hd) {
  const int QKV = (H + 2 * KVH) * hd, Q = H * hd, group = H / KVH;
  const F scale = static_cast<F>(1.0 / std::sqrt(static_cast<double>(hd)));
  const int units = B * H;
  const bool outer = units >= omp_get_max_threads() && static_cast<double>(units) * T * T * hd > 1e5;
#pragma omp parallel if (outer)
  {
  GemmScratch scratch;  // this thread's packing buffers, reused by all its GEMMs
#pragma omp for schedule(dynamic, 1)
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
           a + static_cast<size_t>(r0) * T, T, false, static_cast<const F*>(nullptr), &scratch);
      softmax_rows(a, r0, r1, T, scale);
      // O[r0:r1] = P[r0:r1, 0:r1] V[0:r1]
      gemm(m, hd, r1, a + static_cast<size_t>(r0) * T, T, 1, v, QKV, 1,
           o + static_cast<size_t>(r0) * Q, Q, false, static_cast<const F*>(nullptr), &scratch);
    }
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
    GemmScratch scratch;  // this thread's packing buffers, reused by all its GEMMs
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
               static_cast<const F*>(nullptr), &scratch);
          dsoftmax_rows(ds.data(), p, r0, r1, T, r1, scale);
          // dQ[r0:r1] += dS[r0:r1, 0:r1] K[0:r1]
          gemm(m, hd, r1, dsr, T, 1, k, QKV, 1, dq + static_cast<size_t>(r0) * QKV, QKV, true,
               static_cast<const F*>(nullptr), &scratch);
        }
        // Keys [c0, c1) receive from query rows t >= c0 (dS and P are zero above the diagonal
        // inside the diagonal block: dsoftmax_rows zeroed dS there, the forward zeroed P).
        for (int c0 = 0; c0 < T; c0 += kRB) {
          const int c1 = std::min(T, c0 + kRB), n = c1 - c0, rows = T - c0;
          const size_t off = static_cast<size_t>(c0) * T + c0;
          // dK[c0:c1] += dS[c0:T, c0:c1]^T Q[c0:T]
          gemm(n, hd, rows, ds.data() + off, 1, T, q + static_cast<size_t>(c0) * QKV, QKV, 1,
               dk + static_cast<size_t>(c0) * QKV, QKV, true, static_cast<const F*>(nullptr), &scratch);
          // dV[c0:c1] += P[c0:T, c0:c1]^T dO[c0:T]
          gemm(n, hd, rows, p + off, 1, T, dO + static_cast<size_t>(c0) * Q, Q, 1,
               dv + static_cast<size_t>(c0) * QKV, QKV, true, static_cast<const F*>(nullptr), &scratch);
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
