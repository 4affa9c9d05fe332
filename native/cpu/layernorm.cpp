// LayerNorm with weight and bias (GPT-2 / torch.nn.LayerNorm): biased variance,
// eps inside the square root. Row statistics are accumulated in double.
#include <omp.h>

#include <cmath>

#include "cpu/kernels.h"
#include "cpu/parallel.h"

namespace score::cpu {

template <typename F>
void layernorm_forward(F* out, F* mean, F* rstd, const F* inp, const F* w, const F* b, int N, int C,
                       double eps) {
  parallel_for(N, static_cast<double>(N) * C > 32768, [&](int n) {
    const F* x = inp + static_cast<size_t>(n) * C;
    F* o = out + static_cast<size_t>(n) * C;
    double s = 0.0;
#pragma omp simd reduction(+ : s)
    for (int c = 0; c < C; ++c) s += x[c];
    const double m = s / C;
    double v = 0.0;  // two-pass variance: no cancellation
#pragma omp simd reduction(+ : v)
    for (int c = 0; c < C; ++c) v += (x[c] - m) * (x[c] - m);
    const double rs = 1.0 / std::sqrt(v / C + eps);
    const F mf = static_cast<F>(m), rf = static_cast<F>(rs);
    for (int c = 0; c < C; ++c) o[c] = (x[c] - mf) * rf * w[c] + b[c];
    if (mean) mean[n] = mf;
    rstd[n] = rf;
  });
}

// With xhat = (x - mean) * rstd and y = xhat * w + b (per row, C channels):
//   dxhat = dout * w
//   dinp += rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat))
//   dw += sum over rows of dout * xhat;  db += sum over rows of dout
template <typename F>
void layernorm_backward(F* dinp, F* dw, F* db, const F* dout, const F* inp, const F* w,
                        const F* mean, const F* rstd, int N, int C) {
  const bool par = static_cast<double>(N) * C > 32768;
  if (dinp) {
    parallel_for(N, par, [&](int n) {
      const F* x = inp + static_cast<size_t>(n) * C;
      const F* d = dout + static_cast<size_t>(n) * C;
      F* di = dinp + static_cast<size_t>(n) * C;
      const F m = mean[n], r = rstd[n];
      double s1 = 0.0, s2 = 0.0;
#pragma omp simd reduction(+ : s1, s2)
      for (int c = 0; c < C; ++c) {
        const F dxhat = d[c] * w[c];
        s1 += dxhat;
        s2 += dxhat * ((x[c] - m) * r);
      }
      const F m1 = static_cast<F>(s1 / C), m2 = static_cast<F>(s2 / C);
      for (int c = 0; c < C; ++c) {
        const F xhat = (x[c] - m) * r;
        di[c] += r * (d[c] * w[c] - m1 - xhat * m2);
      }
    });
  }
  if (dw || db) {
    // Sums over rows: each thread owns a range of channels (no races, deterministic).
    parallel_team(par, [&](int nth, int tid) {
      const int c0 = static_cast<int>(static_cast<long long>(C) * tid / nth);
      const int c1 = static_cast<int>(static_cast<long long>(C) * (tid + 1) / nth);
      for (int n = 0; n < N; ++n) {
        const F* x = inp + static_cast<size_t>(n) * C;
        const F* d = dout + static_cast<size_t>(n) * C;
        const F m = mean[n], r = rstd[n];
        if (dw)
          for (int c = c0; c < c1; ++c) dw[c] += d[c] * ((x[c] - m) * r);
        if (db)
          for (int c = c0; c < c1; ++c) db[c] += d[c];
      }
    });
  }
}

template void layernorm_forward<float>(float*, float*, float*, const float*, const float*,
                                       const float*, int, int, double);
template void layernorm_forward<double>(double*, double*, double*, const double*, const double*,
                                        const double*, int, int, double);
template void layernorm_backward<float>(float*, float*, float*, const float*, const float*,
                                        const float*, const float*, const float*, int, int);
template void layernorm_backward<double>(double*, double*, double*, const double*, const double*,
                                         const double*, const double*, const double*, int, int);

}  // namespace score::cpu
