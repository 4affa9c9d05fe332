#include "cpu/gemm_bench.h"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "score/errors.h"
#include "score/rng.h"

namespace score::cpu {

GemmBenchResult bench_sgemm(int M, int N, int K, const std::string& form, int reps, int warmup,
                            GemmIsa isa, unsigned seed) {
  SCORE_CHECK(M > 0 && N > 0 && K > 0, InvalidArgument, "gemm: M, N, K must be positive");
  SCORE_CHECK(form == "nn" || form == "nt" || form == "tn", InvalidArgument,
              "gemm: form must be nn, nt or tn, got '" + form + "'");
  SCORE_CHECK(reps >= 1 && warmup >= 0, InvalidArgument, "gemm: reps must be >= 1");
  // A is (M, K) as the product reads it; stored (K, M) for "tn". B is (K, N); stored (N, K) for "nt".
  const bool ta = form == "tn", tb = form == "nt";
  std::vector<float> A(static_cast<size_t>(M) * K), B(static_cast<size_t>(K) * N), C(static_cast<size_t>(M) * N);
  Rng rng(seed);
  for (float& x : A) x = static_cast<float>(2 * rng.uniform() - 1);
  for (float& x : B) x = static_cast<float>(2 * rng.uniform() - 1);
  const ptrdiff_t a_rs = ta ? 1 : K, a_cs = ta ? M : 1;
  const ptrdiff_t b_rs = tb ? 1 : N, b_cs = tb ? K : 1;
  auto run = [&] { sgemm(M, N, K, A.data(), a_rs, a_cs, B.data(), b_rs, b_cs, C.data(), N, false, nullptr, isa); };
  for (int i = 0; i < warmup; i++) run();
  GemmBenchResult r;
  for (int i = 0; i < reps; i++) {
    const auto t0 = std::chrono::steady_clock::now();
    run();
    r.ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  // Check a few rows (first, last, middle) against a double-precision reference.
  for (int i : {0, M / 2, M - 1}) {
    double worst = 0, scale = 1e-30;
    for (int j = 0; j < N; j++) {
      double ref = 0;
      for (int k = 0; k < K; k++) ref += static_cast<double>(A[i * a_rs + k * a_cs]) * B[k * b_rs + j * b_cs];
      worst = std::max(worst, std::fabs(ref - C[static_cast<size_t>(i) * N + j]));
      scale = std::max(scale, std::fabs(ref));
    }
    r.max_rel_err = std::max(r.max_rel_err, worst / scale);
  }
  return r;
}

}  // namespace score::cpu
