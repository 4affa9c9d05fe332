// Runs the stochastic sampler of native/cuda/sampling.cu on the CPU (see run.sh) against
// the CPU sampler itself (cpu::sample_row, compiled in from native/cpu/sampling.cpp): the
// same uniform per row must give the same token (a draw within float rounding of a CDF
// boundary may differ: at most 2 such rows are accepted, and reported), logp within 1e-5
// and logp_sampling within 2e-5; rows with NaN, +inf or no finite logit get the CPU's
// errors. The cases are those of sample_rows_match_cpu in test/native/test_cuda_kernels.cpp.
#include "sampling_emu.h"

#include <random>

#include "cpu/sampling.h"
#include "score/errors.h"
#include "score/rng.h"

using namespace score;

namespace {

int emulate(std::vector<int32_t>& tok, std::vector<float>& lp, std::vector<float>& lps,
            std::vector<int32_t>& st, const std::vector<float>& logits, const std::vector<double>& u,
            int m, int V, const cuda::DeviceSamplingParams& p) {
  tok.assign(m, -7), lp.assign(m, NAN), lps.assign(m, NAN), st.assign(m, -7);
  const size_t smem = sizeof(double) * ((V + cuda::kSeg - 1) / cuda::kSeg);
  emu::launch({unsigned(m), 1, 1}, cuda::kSampleThreads, smem, [&] {
    cuda::sample_kernel(tok.data(), lp.data(), lps.data(), st.data(), logits.data(), u.data(), V, p);
  });
  return 0;
}

}  // namespace

int main() {
  struct Set { double T; int k; double p; };
  int failures = 0, mismatches = 0, draws = 0;
  std::mt19937 gen(12345);
  std::normal_distribution<float> nd;
  for (int V : {5003, 50257}) {
    const std::vector<Set> sets = V > 10000 ? std::vector<Set>{{0.8, 51, 0.9}, {1.0, 0, 0.95}}
        : std::vector<Set>{{1.0, 0, 1.0}, {0.7, 51, 1.0}, {1.3, 0, 0.9}, {0.8, 51, 0.9}, {1.0, 701, 1.0},
                           {0.9, 701, 0.5}, {0.5, V + 5, 0.95}, {1.0, 0, 1e-3}, {2.0, 1, 1.0}};
    const int m = V > 10000 ? 3 : 10;
    for (const Set& s : sets) {
      std::vector<float> x(size_t(m) * V);
      for (auto& v : x) v = 3.0f * nd(gen);
      for (int r = 0; r < m; r++) {
        float* row = x.data() + size_t(r) * V;
        if (r % 3 == 1)  // masked tokens
          for (int j = 0; j < V; j += 7) row[j] = -INFINITY;
        if (r % 3 == 2) {  // ties: the maximum twice, and pairs of equal logits
          int a = 0;
          for (int j = 1; j < V; j++) if (row[j] > row[a]) a = j;
          row[(a + V / 2) % V] = row[a];
          for (int j = 0; j + 1 < V; j += 2) row[j + 1] = row[j];
        }
      }
      cpu::SamplingParams sp;
      sp.temperature = s.T, sp.top_k = s.k, sp.top_p = s.p;
      std::vector<double> u(m);
      std::vector<cpu::SampleResult> ref(m);
      cpu::SampleScratch scratch;
      for (int r = 0; r < m; r++) {
        Rng rng(1000 * V + 17 * r + s.k);
        Rng copy = rng;
        ref[r] = cpu::sample_row(x.data() + size_t(r) * V, V, sp, copy, scratch);
        u[r] = rng.uniform();  // the one uniform the CPU sampler drew
      }
      std::vector<int32_t> tok, st;
      std::vector<float> lp, lps;
      emulate(tok, lp, lps, st, x, u, m, V, cuda::device_sampling_params(s.T, s.k, s.p));
      int bad = 0;
      for (int r = 0; r < m; r++) {
        draws++;
        if (st[r] != 0) { bad++; continue; }
        if (tok[r] != ref[r].token) {
          mismatches++;
          std::printf("  mismatch V %d T %.2f k %d p %.3f row %d: cpu %d gpu %d (u %.9f)\n", V, s.T, s.k, s.p, r,
                      ref[r].token, tok[r], u[r]);
          continue;
        }
        if (!(std::fabs(lp[r] - ref[r].logp) <= 1e-5) || !(std::fabs(lps[r] - ref[r].logp_sampling) <= 2e-5)) {
          bad++;
          std::printf("  V %d row %d: logp %.7f vs %.7f, logp_sampling %.7f vs %.7f\n", V, r, lp[r], ref[r].logp,
                      lps[r], ref[r].logp_sampling);
        }
      }
      std::printf("%s V %d T %.2f top_k %d top_p %.3f: %d rows\n", bad ? "FAIL" : "ok  ", V, s.T, s.k, s.p, m);
      failures += bad;
    }
  }
  // Bad rows: NaN, +inf, all -inf -> the CPU sampler's errors.
  {
    const int V = 300, m = 4;
    std::vector<float> x(size_t(m) * V, 0.5f);
    x[1 * V + 7] = NAN;
    x[2 * V + 9] = INFINITY;
    for (int j = 0; j < V; j++) x[3 * V + j] = -INFINITY;
    std::vector<double> u(m, 0.5);
    std::vector<int32_t> tok, st;
    std::vector<float> lp, lps;
    emulate(tok, lp, lps, st, x, u, m, V, cuda::device_sampling_params(1.0, 0, 1.0));
    const bool ok = st[0] == cuda::kSampleOk && tok[0] == 150 && st[1] == cuda::kSampleNaN &&
                    st[2] == cuda::kSamplePosInf && st[3] == cuda::kSampleNoFinite;
    std::printf("%s statuses %d %d %d %d (token of the flat row %d)\n", ok ? "ok  " : "FAIL", st[0], st[1], st[2], st[3], tok[0]);
    failures += !ok;
  }
  const bool ok = failures == 0 && mismatches <= 2;
  std::printf("%s: %d draws, %d token mismatches (<= 2 allowed), %d failures\n", ok ? "passed" : "FAILED", draws,
              mismatches, failures);
  return ok ? 0 : 1;
}
