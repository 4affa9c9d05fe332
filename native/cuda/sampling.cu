// Greedy decoding on the device: argmax (lowest index on ties, like
// cpu::sample_row) and its log-probability, one block per row.
//
// Stochastic sampling (temperature, top-k, top-p): by default the backend copies the
// logits to the host and runs the CPU sampler (native/cpu/sampling.cpp); with
// SCORE_CUDA_SAMPLING=device it runs sample_rows below (contract: sampling.h), one block
// per row, without sorting the vocabulary:
//   1. m = max logit (and the NaN / +inf / all -inf checks of the CPU sampler);
//   2. q(i) = exp((x_i - m) / T) (0 below exp(-87), as the CPU), recomputed wherever it
//      is needed instead of stored; Z = sum q and z1 = sum exp(x - m) in double;
//   3. top-k: the k-th ranked token is found by a radix select over 32-bit keys that
//      order logits (4 passes of 8 bits, a 256-bin count histogram per pass), the tie at
//      the boundary resolved in index order; kept_k(i) = ranked at or above it;
//   4. top-p: the same radix select with mass histograms (double) over the kept_k tokens
//      finds the last token of the smallest ranking prefix whose mass reaches
//      top_p * (kept mass) * (1 - 1e-6);
//   5. the draw: the kept mass S is summed in index order by segments of 256 tokens
//      (one warp each), the segment holding u * S is found from the segment sums, and one
//      warp walks it with a prefix scan to the first kept token whose cumulative mass
//      exceeds u * S (with the CPU's fallbacks when rounding leaves none).
// Every sum is in double. Each pass re-reads the row (about 14 passes of V floats per
// row), which is still far less than copying the logits to the host.
#include <algorithm>
#include <cfloat>
#include <cmath>
#include <string>

#include "cuda/common.h"
#include "cuda/kernels.h"
#include "cuda/reduce.cuh"
#include "cuda/sampling.h"

namespace score::cuda {
namespace {

constexpr int kThreads = 512;

__global__ void __launch_bounds__(kThreads)
    greedy_kernel(int32_t* token, float* logp, const float* logits, int V) {
  __shared__ float bv[32];
  __shared__ int bi[32];
  __shared__ double dscratch[32];
  const float* x = logits + static_cast<int64_t>(blockIdx.x) * V;
  float best = -INFINITY;
  int arg = V;  // "none yet": loses every tie
  for (int v = threadIdx.x; v < V; v += blockDim.x)
    if (x[v] > best) best = x[v], arg = v;  // ascending v: the first maximum of this thread
  // (value desc, index asc) reduction
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    const float ov = __shfl_xor_sync(0xffffffffu, best, o);
    const int oi = __shfl_xor_sync(0xffffffffu, arg, o);
    if (ov > best || (ov == best && oi < arg)) best = ov, arg = oi;
  }
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, nw = blockDim.x / 32;
  if (lane == 0) bv[warp] = best, bi[warp] = arg;
  __syncthreads();
  best = lane < nw ? bv[lane] : -INFINITY;
  arg = lane < nw ? bi[lane] : V;
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    const float ov = __shfl_xor_sync(0xffffffffu, best, o);
    const int oi = __shfl_xor_sync(0xffffffffu, arg, o);
    if (ov > best || (ov == best && oi < arg)) best = ov, arg = oi;
  }
  float s = 0.f;
  for (int v = threadIdx.x; v < V; v += blockDim.x) s += expf(x[v] - best);
  const double sum = block_sum(static_cast<double>(s), dscratch);
  if (threadIdx.x == 0) {
    token[blockIdx.x] = arg < V ? arg : 0;
    logp[blockIdx.x] = static_cast<float>(-log(sum));
  }
}

// ---- stochastic sampling ----

constexpr int kSampleThreads = 512;
constexpr int kSeg = 256;  // tokens per segment of the index-order scans: 8 loads of 32 per lane
constexpr float kExpFloor = -87.0f;  // as cpu::sample_row: exp below this is 0
constexpr double kTopPTol = 1e-6;    // as cpu::sample_row

// A 32-bit key whose unsigned order is the order of the logits (-0 taken as +0 so that
// equal logits have equal keys; NaN never gets here).
__device__ __forceinline__ uint32_t rank_key(float x) {
  const uint32_t u = __float_as_uint(x == 0.0f ? 0.0f : x);
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

// One row and the truncation found so far. Token i is ranked at or above token b when
// key(i) > key(b), or the keys are equal and i <= b.
struct Row {
  const float* x;
  int V;
  float m, inv_t;
  bool use_k = false, use_p = false;
  uint32_t kkey = 0, pkey = 0;  // keys of the last token kept by top-k / top-p
  int kidx = 0, pidx = 0;       // and their indices
  __device__ float q(int i) const {
    const float d = (x[i] - m) * inv_t;
    return d < kExpFloor ? 0.0f : expf(d);
  }
  __device__ bool kept_k(int i, uint32_t key) const {
    return !use_k || key > kkey || (key == kkey && i <= kidx);
  }
  __device__ bool kept(int i) const {
    const uint32_t key = rank_key(x[i]);
    return kept_k(i, key) && (!use_p || key > pkey || (key == pkey && i <= pidx));
  }
};

// Block-wide: the first index i, in index order, with w(i) > 0 at which the running sum
// of w reaches the target (sum >= target, or sum > target when strict); the target is
// `target * total` when relative (total = the sum of every w). When rounding leaves no
// such index (the segment sums and the walk add in different orders): the last i with
// w(i) > 0 of the segment the sums pointed to, else of the row; -1 when every w is 0.
// Every thread calls it and gets the result. seg: ceil(V / kSeg) doubles of shared memory.
template <typename W>
__device__ int scan_find(int V, W w, double target, bool strict, bool relative, double* seg,
                         double* total_out) {
  __shared__ int s_found, s_result;
  __shared__ double s_before, s_total;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
  const int nseg = (V + kSeg - 1) / kSeg;
  for (int sg = warp; sg < nseg; sg += nw) {
    double sum = 0.0;
#pragma unroll
    for (int j = 0; j < kSeg / 32; j++) {
      const int i = sg * kSeg + j * 32 + lane;
      if (i < V) sum += w(i);
    }
    sum = warp_sum(sum);
    if (lane == 0) seg[sg] = sum;
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    double total = 0.0;
    for (int sg = 0; sg < nseg; sg++) total += seg[sg];
    const double t = relative ? target * total : target;
    double cum = 0.0, before = 0.0;
    int found = -1;
    for (int sg = 0; sg < nseg && found < 0; sg++) {
      const double next = cum + seg[sg];
      if (seg[sg] > 0.0 && (strict ? next > t : next >= t)) found = sg, before = cum;
      cum = next;
    }
    s_found = found, s_before = before, s_total = total, s_result = -1;
  }
  __syncthreads();
  const int sf = s_found;
  const double total = s_total, t = relative ? target * total : target;
  if (sf >= 0 && warp == 0) {
    // Walk the segment 32 tokens at a time: an inclusive warp scan of w in index order.
    double cum = s_before;
    int result = -1, last = -1;
    for (int j = 0; j < kSeg / 32 && result < 0; j++) {  // result is warp-uniform
      const int i = sf * kSeg + j * 32 + lane;
      const double wi = i < V ? w(i) : 0.0;
      double inc = wi;
#pragma unroll
      for (int o = 1; o < 32; o <<= 1) {
        const double y = __shfl_up_sync(0xffffffffu, inc, o);
        if (lane >= o) inc += y;
      }
      const bool hit = wi > 0.0 && (strict ? cum + inc > t : cum + inc >= t);
      const unsigned hits = __ballot_sync(0xffffffffu, hit);
      const unsigned pos = __ballot_sync(0xffffffffu, wi > 0.0);
      if (pos) last = sf * kSeg + j * 32 + (31 - __clz(static_cast<int>(pos)));
      if (hits) result = sf * kSeg + j * 32 + (__ffs(static_cast<int>(hits)) - 1);
      cum += __shfl_sync(0xffffffffu, inc, 31);
    }
    if (lane == 0) s_result = result >= 0 ? result : last;
  }
  if (sf < 0) {  // block-uniform: the last index with w > 0 in the row
    int last = -1;
    for (int i = threadIdx.x; i < V; i += blockDim.x)
      if (w(i) > 0.0) last = i;  // ascending i: this thread's last
    atomicMax(&s_result, last);
  }
  __syncthreads();
  if (total_out) *total_out = total;
  return s_result;  // read before any later call can rewrite it (it writes after a barrier)
}

// Block-wide radix select over the keys of the tokens with incl(i, key): the key K with
// weight(key > K) < target <= weight(key >= K), weight = 1 per token (counts) or q(i)
// (kMass; tokens with q = 0 weigh nothing). *rem = target - weight(key > K), the weight
// still to take from the tokens whose key is K. If rounding leaves the target unreached
// (masses summed in another order), the lowest nonzero digit is taken each time, which
// keeps everything still in question.
template <bool kMass, typename Incl>
__device__ uint32_t radix_select(const Row& r, Incl incl, double target, double* rem_out,
                                 uint32_t* hist_u, double* hist_d) {
  __shared__ uint32_t s_prefix;
  __shared__ double s_rem;
  uint32_t prefix = 0, pmask = 0;
  double rem = target;
  for (int shift = 24; shift >= 0; shift -= 8) {
    for (int d = threadIdx.x; d < 256; d += blockDim.x) {
      if (kMass) hist_d[d] = 0.0;
      else hist_u[d] = 0u;
    }
    __syncthreads();
    for (int i = threadIdx.x; i < r.V; i += blockDim.x) {
      const uint32_t key = rank_key(r.x[i]);
      if ((key & pmask) != prefix || !incl(i, key)) continue;
      const int d = static_cast<int>((key >> shift) & 255u);
      if (kMass) {
        const float q = r.q(i);
        if (q > 0.0f) atomicAdd(&hist_d[d], static_cast<double>(q));
      } else {
        atomicAdd(&hist_u[d], 1u);
      }
    }
    __syncthreads();
    if (threadIdx.x == 0) {
      double above = 0.0, above_lowest = 0.0;
      int chosen = -1, lowest = -1;
      for (int d = 255; d >= 0; d--) {
        const double h = kMass ? hist_d[d] : static_cast<double>(hist_u[d]);
        if (h <= 0.0) continue;
        if (above + h >= rem) {
          chosen = d;
          break;
        }
        lowest = d, above_lowest = above;
        above += h;
      }
      if (chosen < 0) chosen = lowest, above = above_lowest;  // rounding: see above
      s_prefix = prefix | (static_cast<uint32_t>(chosen < 0 ? 0 : chosen) << shift);
      s_rem = rem - above;
    }
    __syncthreads();
    prefix = s_prefix, rem = s_rem;  // rewritten only after the next pass's two barriers
    pmask |= 255u << shift;
  }
  *rem_out = rem;
  return prefix;
}

// One block per row. Shared: 2 KiB of histograms + ceil(V / kSeg) doubles (dynamic).
__global__ void __launch_bounds__(kSampleThreads)
    sample_kernel(int32_t* token, float* logp, float* logp_sampling, int32_t* status,
                  const float* logits, const double* uniform, int V, DeviceSamplingParams p) {
  extern __shared__ double seg[];  // (ceil(V / kSeg)) segment sums of scan_find
  __shared__ uint32_t hist_u[256];
  __shared__ double hist_d[256];
  __shared__ double dscratch[32];
  __shared__ float fscratch[32];
  __shared__ int flags;
  const int row = blockIdx.x;
  Row r;
  r.x = logits + static_cast<int64_t>(row) * V;
  r.V = V;
  r.inv_t = p.inv_t;

  // 1. max and the checks (NaN is caught here, before any key is formed).
  if (threadIdx.x == 0) flags = 0;
  __syncthreads();
  // flags: 1 = a NaN, 2 = a value above -inf, 4 = +inf (the max alone cannot say "all
  // -inf": block_max pads with -FLT_MAX).
  float mx = -INFINITY;
  int seen = 0;
  for (int i = threadIdx.x; i < V; i += blockDim.x) {
    const float v = r.x[i];
    if (v != v) {
      seen |= 1;
    } else {
      mx = fmaxf(mx, v);
      seen |= (v > -INFINITY ? 2 : 0) | (v == INFINITY ? 4 : 0);
    }
  }
  if (seen) atomicOr(&flags, seen);
  mx = block_max(mx, fscratch);  // its barriers order every atomicOr before the read below
  const int fl = flags;
  const int st = (fl & 1) ? kSampleNaN : (fl & 4) ? kSamplePosInf : !(fl & 2) ? kSampleNoFinite : kSampleOk;
  if (st != kSampleOk) {  // block-uniform
    if (threadIdx.x == 0) status[row] = st, token[row] = -1, logp[row] = logp_sampling[row] = 0.0f;
    return;
  }
  r.m = mx;

  // 2. Z = sum q, z1 = sum exp(x - m) (the policy's normaliser).
  double z = 0.0, z1 = 0.0;
  for (int i = threadIdx.x; i < V; i += blockDim.x) {
    z += static_cast<double>(r.q(i));
    if (!p.unit_t) {
      const float d = r.x[i] - mx;
      z1 += d < kExpFloor ? 0.0 : static_cast<double>(expf(d));
    }
  }
  const double Z = block_sum(z, dscratch);
  const double Z1 = p.unit_t ? Z : block_sum(z1, dscratch);

  // 3. top-k: the k-th ranked token.
  if (p.top_k > 0 && p.top_k < V) {
    double rem = 0.0;
    const uint32_t kk = radix_select<false>(r, [](int, uint32_t) { return true; }, p.top_k, &rem,
                                            hist_u, hist_d);
    // rem = k - #(key > kk) >= 1 of the tokens with key kk, lowest indices first.
    const int kb = scan_find(V, [&](int i) { return rank_key(r.x[i]) == kk ? 1.0 : 0.0; }, rem,
                             false, false, seg, nullptr);
    r.use_k = true, r.kkey = kk, r.kidx = kb;
  }

  // 4. top-p over the kept_k tokens (renormalised: the target scales with their mass).
  if (p.top_p < 1.0) {
    double sk = Z;
    if (r.use_k) {
      double s = 0.0;
      for (int i = threadIdx.x; i < V; i += blockDim.x)
        if (r.kept_k(i, rank_key(r.x[i]))) s += static_cast<double>(r.q(i));
      sk = block_sum(s, dscratch);
    }
    double rem = 0.0;
    const uint32_t pk = radix_select<true>(
        r, [&](int i, uint32_t key) { return r.kept_k(i, key); }, p.top_p * sk * (1.0 - kTopPTol),
        &rem, hist_u, hist_d);
    const int pb = scan_find(
        V,
        [&](int i) {
          const uint32_t key = rank_key(r.x[i]);
          return key == pk && r.kept_k(i, key) ? static_cast<double>(r.q(i)) : 0.0;
        },
        rem, false, false, seg, nullptr);
    r.use_p = true, r.pkey = pk, r.pidx = pb;  // pb >= 0: the top token has q = 1
  }

  // 5. The draw: the first kept token whose cumulative mass exceeds u * S.
  double S = 0.0;
  const double u = uniform[row];
  const int tok = scan_find(V, [&](int i) { return r.kept(i) ? static_cast<double>(r.q(i)) : 0.0; },
                            u, true, true, seg, &S);
  if (threadIdx.x == 0) {
    // tok >= 0: the top-ranked token is always kept and has q = 1.
    status[row] = kSampleOk;
    token[row] = tok;
    logp[row] = static_cast<float>(static_cast<double>(r.x[tok]) - mx - log(Z1));
    logp_sampling[row] = static_cast<float>(log(static_cast<double>(r.q(tok))) - log(S));
  }
}

}  // namespace

void greedy_rows(int32_t* token, float* logp, const float* logits, int m, int V,
                 cudaStream_t stream) {
  if (m == 0) return;
  greedy_kernel<<<m, kThreads, 0, stream>>>(token, logp, logits, V);
  SCORE_CUDA_LAUNCH_CHECK();
}

}  // namespace score::cuda

namespace score::cuda {

DeviceSamplingParams device_sampling_params(double temperature, int top_k, double top_p) {
  DeviceSamplingParams p;
  // As cpu::sample_row: 1/T clamped so that it stays a finite, nonzero float.
  p.inv_t = static_cast<float>(std::min(1e30, std::max(1e-30, 1.0 / temperature)));
  p.unit_t = temperature == 1.0;
  p.top_k = top_k;
  p.top_p = top_p;
  return p;
}

const char* sample_status_message(int32_t status) {
  switch (status) {
    case kSampleNaN: return "sample_row: logits contain NaN";
    case kSamplePosInf: return "sample_row: logits contain +inf";
    case kSampleNoFinite: return "sample_row: logits have no finite value (all -inf)";
    default: return "";
  }
}

void sample_rows(int32_t* token, float* logp, float* logp_sampling, int32_t* status,
                 const float* logits, const double* uniform, int m, int V,
                 const DeviceSamplingParams& p, cudaStream_t stream) {
  // The segment sums live in shared memory: 8 bytes per 256 tokens (128 KiB at 2^22).
  SCORE_CHECK(V >= 1 && V <= (1 << 22), InvalidArgument,
              "sample_rows: V must be in [1, 2^22] (got " + std::to_string(V) + ")");
  if (m == 0) return;
  const size_t smem = sizeof(double) * static_cast<size_t>((V + kSeg - 1) / kSeg);
  if (smem > 48 * 1024)
    SCORE_CUDA_CHECK(cudaFuncSetAttribute(sample_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                          static_cast<int>(smem)));
  sample_kernel<<<m, kSampleThreads, smem, stream>>>(token, logp, logp_sampling, status, logits,
                                                     uniform, V, p);
  SCORE_CUDA_LAUNCH_CHECK();
}

}  // namespace score::cuda
