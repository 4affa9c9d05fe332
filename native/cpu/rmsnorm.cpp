// RMSNorm (Llama / Qwen2): out = (inp * rstd) * w, rstd = 1 / sqrt(mean(inp^2) + eps),
// the mean of squares accumulated in double. The product order follows Hugging Face
// (normalise, then scale by the weight).
#include <omp.h>

#include <cmath>

#include "cpu/kernels.h"
#include "cpu/parallel.h"

namespace score::cpu {

template <typename F>
void rmsnorm_forward(F* out, F* rstd, const F* inp, const F* w, int N, int C, double eps) {
  parallel_for(N, static_cast<double>(N) * C > 32768, [&](int n) {
    const F* x = inp + static_cast<size_t>(n) * C;
    F* o = out + static_cast<size_t>(n) * C;
    double ss = 0.0;
#pragma omp simd reduction(+ : ss)
    for (int c = 0; c < C; ++c) ss += static_cast<double>(x[c]) * x[c];
    const F r = static_cast<F>(1.0 / std::sqrt(ss / C + eps));
    for (int c = 0; c < C; ++c) o[c] = (x[c] * r) * w[c];
    if (rstd) rstd[n] = r;
  });
}

// y_c = x_c r w_c with r = (mean(x^2) + eps)^(-1/2), so dr/dx_c = -r^3 x_c / C and
//   dinp_c += r * (dout_c w_c - x_c r^2 mean(dout * w * x));   dw_c += sum over rows of dout_c x_c r.
template <typename F>
void rmsnorm_backward(F* dinp, F* dw, const F* dout, const F* inp, const F* w, const F* rstd, int N,
                      int C) {
  const bool par = static_cast<double>(N) * C > 32768;
  if (dinp) {
    parallel_for(N, par, [&](int n) {
      const F* x = inp + static_cast<size_t>(n) * C;
      const F* d = dout + static_cast<size_t>(n) * C;
      F* di = dinp + static_cast<size_t>(n) * C;
      const F r = rstd[n];
      double s = 0.0;
#pragma omp simd reduction(+ : s)
      for (int c = 0; c < C; ++c) s += d[c] * w[c] * x[c];
      const F k = static_cast<F>(s / C) * r * r;
      for (int c = 0; c < C; ++c) di[c] += r * (d[c] * w[c] - x[c] * k);
    });
  }
  if (dw) {
    // Sum over rows: each thread owns a range of channels (no races, deterministic).
    parallel_team(par, [&](int nth, int tid) {
      const int c0 = static_cast<int>(static_cast<long long>(C) * tid / nth);
      const int c1 = static_cast<int>(static_cast<long long>(C) * (tid + 1) / nth);
      for (int n = 0; n < N; ++n) {
        const F* x = inp + static_cast<size_t>(n) * C;
        const F* d = dout + static_cast<size_t>(n) * C;
        const F r = rstd[n];
        for (int c = c0; c < c1; ++c) dw[c] += d[c] * (x[c] * r);
      }
    });
  }
}

template void rmsnorm_forward<float>(float*, float*, const float*, const float*, int, int, double);
template void rmsnorm_forward<double>(double*, double*, const double*, const double*, int, int,
                                      double);
template void rmsnorm_backward<float>(float*, float*, const float*, const float*, const float*,
                                      const float*, int, int);
template void rmsnorm_backward<double>(double*, double*, const double*, const double*,
                                       const double*, const double*, int, int);

}  // namespace score::cpu
