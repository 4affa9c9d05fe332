// Attention of single rows against the KV cache, for prefill and decode (cpu twin:
// native/cpu/attention_cached.cpp). Cache layout (slots, KVH, len, hd), as on the CPU.
//
// One warp per (row, query head), online softmax over the row's positions 0..pos in
// blocks of 32: lane l scores position s0 + l (a full dot over hd from its own k
// row), the warp agrees on the running max and sum, then every lane accumulates its
// hd/32 output dimensions over the 32 positions with the probabilities broadcast by
// shuffles (coalesced reads of the v rows).
#include <cmath>

#include "cuda/common.h"
#include "cuda/kernels.h"
#include "cuda/reduce.cuh"

namespace score::cuda {
namespace {

constexpr int kMaxHd = 256;

__global__ void kv_store_kernel(float* kcache, float* vcache, const float* qkv, const int32_t* slot,
                                const int32_t* pos, int N, int QKV, int H, int KVH, int hd,
                                int len) {
  const int64_t idx = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (idx >= static_cast<int64_t>(N) * KVH * hd) return;
  const int d = static_cast<int>(idx % hd), h = static_cast<int>((idx / hd) % KVH);
  const int r = static_cast<int>(idx / (static_cast<int64_t>(hd) * KVH));
  const int64_t at = ((static_cast<int64_t>(slot[r]) * KVH + h) * len + pos[r]) * hd + d;
  const float* row = qkv + static_cast<int64_t>(r) * QKV + H * hd;
  kcache[at] = row[h * hd + d];
  vcache[at] = row[KVH * hd + h * hd + d];
}

__global__ void attention_cached_kernel(float* out, const float* qkv, const float* kcache,
                                        const float* vcache, const int32_t* slot,
                                        const int32_t* pos, int N, int QKV, int H, int KVH, int hd,
                                        int len, float scale) {
  extern __shared__ float qs[];  // (warps per block, hd)
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t item = blockIdx.x * static_cast<int64_t>(blockDim.x / 32) + warp;
  if (item >= static_cast<int64_t>(N) * H) return;
  const int r = static_cast<int>(item / H), h = static_cast<int>(item % H);
  const int kvh = h / (H / KVH), p = pos[r];
  float* q = qs + warp * hd;
  for (int d = lane; d < hd; d += 32) q[d] = qkv[static_cast<int64_t>(r) * QKV + h * hd + d];
  __syncwarp();
  const int64_t base = (static_cast<int64_t>(slot[r]) * KVH + kvh) * len * hd;
  const float* K = kcache + base;
  const float* V = vcache + base;
  float acc[kMaxHd / 32];
#pragma unroll
  for (int u = 0; u < kMaxHd / 32; u++) acc[u] = 0.f;
  float m = -INFINITY, l = 0.f;
  for (int s0 = 0; s0 <= p; s0 += 32) {
    const int s = s0 + lane;
    float score = -INFINITY;
    if (s <= p) {
      const float* k = K + static_cast<int64_t>(s) * hd;
      float dot = 0.f;
      for (int d = 0; d < hd; d++) dot += q[d] * k[d];
      score = dot * scale;
    }
    const float mnew = fmaxf(m, warp_max(score));
    const float corr = expf(m - mnew);  // exp(-inf) = 0 on the first block
    const float e = s <= p ? expf(score - mnew) : 0.f;
    l = l * corr + warp_sum(e);
#pragma unroll
    for (int u = 0; u < kMaxHd / 32; u++) acc[u] *= corr;
    const int n = min(32, p - s0 + 1);
    for (int j = 0; j < n; j++) {
      const float pj = __shfl_sync(0xffffffffu, e, j);
      const float* vr = V + static_cast<int64_t>(s0 + j) * hd;
#pragma unroll
      for (int u = 0; u < kMaxHd / 32; u++) {
        const int d = lane + 32 * u;
        if (d < hd) acc[u] += pj * vr[d];
      }
    }
    m = mnew;
  }
  const float inv = 1.0f / l;
  float* o = out + static_cast<int64_t>(r) * H * hd + h * hd;
#pragma unroll
  for (int u = 0; u < kMaxHd / 32; u++) {
    const int d = lane + 32 * u;
    if (d < hd) o[d] = acc[u] * inv;
  }
}

}  // namespace

void kv_store(float* kcache, float* vcache, const float* qkv, const int32_t* slot,
              const int32_t* pos, int N, int QKV, int H, int KVH, int hd, int len,
              cudaStream_t stream) {
  const int64_t n = static_cast<int64_t>(N) * KVH * hd;
  if (n == 0) return;
  kv_store_kernel<<<ceil_div(n, 256), 256, 0, stream>>>(kcache, vcache, qkv, slot, pos, N, QKV, H,
                                                        KVH, hd, len);
  SCORE_CUDA_LAUNCH_CHECK();
}

void attention_cached_forward(float* out, const float* qkv, const float* kcache,
                              const float* vcache, const int32_t* slot, const int32_t* pos, int N,
                              int QKV, int H, int KVH, int hd, int len, cudaStream_t stream) {
  SCORE_CHECK(hd <= kMaxHd, Unsupported, "CUDA attention: head_dim over 256 is not supported");
  const int64_t items = static_cast<int64_t>(N) * H;
  if (items == 0) return;
  constexpr int kWarps = 4;
  attention_cached_kernel<<<ceil_div(items, kWarps), kWarps * 32, kWarps * hd * sizeof(float),
                            stream>>>(out, qkv, kcache, vcache, slot, pos, N, QKV, H, KVH, hd, len,
                                      1.0f / std::sqrt(static_cast<float>(hd)));
  SCORE_CUDA_LAUNCH_CHECK();
}

}  // namespace score::cuda
