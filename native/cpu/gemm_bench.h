// Timing and checking sgemm at one shape, in the three forms of a linear layer:
//   nt: forward      Y (M, N) = X (M, K) @ W^T, W stored (N, K)
//   nn: d-input      dX (M, K) = dY (M, N) @ W (N, K)    (here M, N, K name the product's own sizes)
//   tn: d-weight     dW (N, K) = dY^T @ X                 (A read transposed)
// Used by `score-rl bench gemm` (through the addon) and the kernel lab (bench/kernels).
#pragma once
#include <string>
#include <vector>

#include "cpu/gemm.h"

namespace score::cpu {

struct GemmBenchResult {
  std::vector<double> ms;  // one entry per timed repetition
  double max_rel_err = 0;  // vs dgemm on sampled rows, relative to the row's largest |value|
};

// form: "nn" | "nt" | "tn". Random inputs in [-1, 1) from `seed`; `warmup` untimed calls.
GemmBenchResult bench_sgemm(int M, int N, int K, const std::string& form, int reps, int warmup,
                            GemmIsa isa = GemmIsa::Auto, unsigned seed = 1);

}  // namespace score::cpu
