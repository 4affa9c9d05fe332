// Token sampling for batched generation: one row of logits in, one token out,
// with its log-probability under the model and under the sampling policy.
//
// Transformations, in Hugging Face generate()'s order: temperature, then top-k,
// then top-p (nucleus), then renormalisation and one draw.
//
// Determinism and the random stream:
//  - A non-greedy call draws exactly one rng.uniform(), whatever V, top_k and
//    top_p are, and whether or not the truncated distribution has one token
//    left. A sequence's stream therefore advances by one per generated token:
//    results are reproducible from the seed, and two sequences with their own
//    generators never influence each other. Greedy calls (temperature 0) draw
//    nothing.
//  - The draw u is mapped by the inverse CDF over the kept tokens in
//    vocabulary (index) order: the token is the first kept i whose cumulative
//    kept mass exceeds u * (kept mass). With no truncation this is a single
//    linear pass over the unsorted probabilities.
//  - Ranking (for top-k, top-p and greedy) is by logit, ties broken by the
//    lower token index. Top-k keeps exactly k tokens, or every token of
//    nonzero probability when there are fewer (Hugging Face keeps every token
//    tied with the k-th; ties of float logits are rare in practice).
//  - Top-p keeps the smallest prefix of that ranking whose mass (after
//    temperature and top-k, renormalised) reaches top_p. The comparison
//    allows a relative tolerance of 1e-6 for the float rounding of the
//    probabilities, so a prefix whose mass equals top_p in exact arithmetic
//    ends the nucleus. At least one token (the argmax) is always kept.
//
// Numerics: max-subtracted softmax, probabilities exp'd in float (<= 2 ulp),
// every sum in double. Logits of -inf (masked tokens) get probability exactly
// 0 and are never sampled; so do logits more than 87 / temperature below the
// maximum. Temperatures are effectively clamped to [1e-30, 1e30].
//
// Performance: no allocation once the scratch has grown to the vocabulary
// size (2V floats, 3V indices); a few vectorised passes over the row (max,
// exp + sum, the kept mass) and a walk that skips whole blocks by their sums.
// Truncation never sorts the vocabulary: masked sums (or counts) at a few
// probability levels bracket the top-k / top-p boundary in one vectorised
// pass, and a weighted quickselect orders only the tokens between the two
// levels (see sampling.cpp).
//
// Errors: score::Error(InvalidArgument) for bad parameters (see
// validate_sampling), V < 1, and logits with no finite maximum (all -inf),
// +inf or NaN. sample_row validates its parameters on every call. An
// exception must not leave an OpenMP region: a caller that samples inside one
// should call validate_sampling before it and catch per row inside it.
#pragma once
#include <cstdint>
#include <vector>

#include "score/rng.h"

namespace score::cpu {

struct SamplingParams {
  double temperature = 1.0;  // 0 = greedy (argmax, lowest index on ties)
  int top_k = 0;             // 0 = off; else keep the k most probable tokens
  double top_p = 1.0;        // in (0, 1]; 1 = off; nucleus: keep the smallest set of most probable
                             // tokens whose probability sums to >= top_p (at least one token)
};

struct SampleResult {
  int32_t token;
  float logp;           // log_softmax(logits)[token]: the model itself (temperature 1, no truncation)
  float logp_sampling;  // log-probability of `token` under the distribution actually sampled from
                        // (temperature, top-k, top-p, renormalised); 0 for greedy
};

// Reusable scratch so that the hot loop never allocates (one per thread). Grows
// to 2V floats and 3V indices on first use (once, for the largest V); its
// contents between calls are meaningless.
struct SampleScratch {
  std::vector<float> probs;
  std::vector<int32_t> idx;
};

// Samples one token from logits (V). See the top of this file for the contract.
SampleResult sample_row(const float* logits, int V, const SamplingParams& p, score::Rng& rng,
                        SampleScratch& scratch);

// Throws score::Error(InvalidArgument) naming the bad field: "temperature must be >= 0"
// (also for NaN and +inf), "top_p must be in (0, 1]", "top_k must be >= 0".
void validate_sampling(const SamplingParams& p);

}  // namespace score::cpu
