// Linear layer: out = inp @ weight^T + bias, weight stored (OC, IC).
// All three products go through the one packed GEMM (gemm.h); the strides
// express the transposes, and packing absorbs them.

#include <algorithm>
#include <vector>

#include "cpu/gemm.h"
#include "cpu/kernels.h"
#include "cpu/parallel.h"

namespace score::cpu {

template <typename F>
void matmul_forward(F* out, const F* inp, const F* weight, const F* bias, int N, int IC, int OC) {
  // out (N, OC) = inp (N, IC) @ B with B (IC, OC) = weight^T: B(k, j) = weight[j*IC + k].
  gemm(N, OC, IC, inp, IC, 1, weight, 1, IC, out, OC, /*accumulate=*/false, bias);
}

template <typename F>
void matmul_backward(F* dinp, F* dweight, F* dbias, const F* dout, const F* inp, const F* weight,
                     int N, int IC, int OC) {
  // dinp (N, IC) += dout (N, OC) @ weight (OC, IC)
  if (dinp) gemm(N, IC, OC, dout, OC, 1, weight, IC, 1, dinp, IC, true, nullptr);
  // dweight (OC, IC) += dout^T (OC, N) @ inp (N, IC): A(i=oc, k=n) = dout[n*OC + oc]
  if (dweight) gemm(OC, IC, N, dout, 1, OC, inp, IC, 1, dweight, IC, true, nullptr);
  if (dbias) {
    // dbias (OC) += column sums of dout (N, OC), accumulated in double. Each thread owns a
    // range of columns (no races, deterministic) and sweeps the rows over it.
    const bool par = static_cast<double>(N) * OC > 65536;
    parallel_team(par, [&](int nth, int tid) {
      const int j0 = static_cast<int>(static_cast<long long>(OC) * tid / nth);
      const int j1 = static_cast<int>(static_cast<long long>(OC) * (tid + 1) / nth);
      std::vector<double> acc(static_cast<size_t>(std::max(0, j1 - j0)), 0.0);
      for (int n = 0; n < N; ++n) {
        const F* row = dout + static_cast<size_t>(n) * OC;
        for (int j = j0; j < j1; ++j) acc[j - j0] += row[j];
      }
      for (int j = j0; j < j1; ++j) dbias[j] += static_cast<F>(acc[j - j0]);
    });
  }
}

template void matmul_forward<float>(float*, const float*, const float*, const float*, int, int, int);
template void matmul_forward<double>(double*, const double*, const double*, const double*, int, int,
                                     int);
template void matmul_backward<float>(float*, float*, float*, const float*, const float*,
                                     const float*, int, int, int);
template void matmul_backward<double>(double*, double*, double*, const double*, const double*,
                                      const double*, int, int, int);

}  // namespace score::cpu
