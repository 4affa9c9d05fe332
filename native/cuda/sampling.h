// sampling.cu: stochastic sampling on the device (temperature, top-k, top-p), the device
// twin of cpu::sample_row (native/cpu/sampling.h) with the same contract: ranking by logit
// (ties: lower index first), top-k then top-p on the renormalised tempered distribution
// (top-p compared with the same 1e-6 relative tolerance), and ONE uniform u per sample,
// drawn on the host from the sequence's own score::Rng exactly where the CPU sampler draws
// it, mapped by the inverse CDF over the kept tokens in index order (the first kept token
// whose cumulative mass exceeds u * kept mass). The same u therefore gives the same token
// as the CPU sampler, up to float rounding of the probabilities (a draw within ~1e-7 of a
// CDF boundary may land on the neighbour). Greedy decoding is greedy_rows (kernels.h).
// Kept out of kernels.h so that editing it does not rebuild every kernel.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

namespace score::cuda {

struct DeviceSamplingParams {
  float inv_t = 1.0f;  // 1 / temperature, clamped to [1e-30, 1e30] as in cpu::sample_row
  bool unit_t = true;  // temperature == 1 (the model's normaliser is the sampling one)
  int top_k = 0;       // 0 (or >= V): off
  double top_p = 1.0;  // 1: off
};
// From the request's values (temperature > 0; validated by cpu::validate_sampling).
DeviceSamplingParams device_sampling_params(double temperature, int top_k, double top_p);

// Per-row status: the cases where cpu::sample_row throws ERR_SCORE_NUMERIC.
enum SampleStatus : int32_t {
  kSampleOk = 0,
  kSampleNaN = 1,        // "logits contain NaN"
  kSamplePosInf = 2,     // "logits contain +inf"
  kSampleNoFinite = 3,   // "logits have no finite value (all -inf)"
};
// The message cpu::sample_row gives for a status ("sample_row: logits contain NaN", ...).
const char* sample_status_message(int32_t status);

// Rows r < m of logits (m, V): token[r], logp[r] (log_softmax at temperature 1, the policy),
// logp_sampling[r] (under the truncated, renormalised sampling distribution), status[r];
// uniform (m) doubles in [0, 1). One block per row. 1 <= V <= 2^22.
void sample_rows(int32_t* token, float* logp, float* logp_sampling, int32_t* status,
                 const float* logits, const double* uniform, int m, int V,
                 const DeviceSamplingParams& p, cudaStream_t stream);

}  // namespace score::cuda
