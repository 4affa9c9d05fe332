// Greedy decoding on the device: argmax (lowest index on ties, like
// cpu::sample_row) and its log-probability, one block per row. Stochastic sampling
// (temperature, top-k, top-p) copies the logits to the host and runs the CPU sampler
// (native/cpu/sampling.cpp), so both backends draw identical tokens from identical
// logits and one random stream per sequence.
#include <cfloat>
#include <cmath>

#include "cuda/common.h"
#include "cuda/kernels.h"
#include "cuda/reduce.cuh"

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

}  // namespace

void greedy_rows(int32_t* token, float* logp, const float* logits, int m, int V,
                 cudaStream_t stream) {
  if (m == 0) return;
  greedy_kernel<<<m, kThreads, 0, stream>>>(token, logp, logits, V);
  SCORE_CUDA_LAUNCH_CHECK();
}

}  // namespace score::cuda
