// Attention of single rows against the KV cache, for prefill and decode (cpu twin:
// native/cpu/attention_cached.cpp). Cache layout (slots, KVH, len, hd), as on the CPU.
// The cache holds float32, or bf16 (uint16_t bits, nearest even: half the memory and
// half the bytes a decode step reads); the arithmetic is float32 either way.
//
// Online softmax over the row's positions 0..pos in blocks of 32: lane l scores position
// s0 + l (a full dot over hd from its own k row), the warp agrees on the running max and
// sum, then every lane accumulates its hd/32 output dimensions over the 32 positions with
// the probabilities broadcast by shuffles (coalesced reads of the v rows).
//  - head sizes 32, 64, 128 (attention_cached_split_kernel): one block of kSplit warps
//    per (row, query head), warp w taking the position blocks w, w + kSplit, ...; the
//    warps' partial results (max, sum, output) are combined in shared memory at the end.
//    The k rows are read as float4 in a loop unrolled at compile time. (The first version,
//    the generic kernel below, took 1.43 ms of a 2.4 ms gpt2 decode step at batch 64 on
//    an H200: one warp per (row, head) is 768 warps on 132 SMs, and its scalar dot loop
//    kept one load in flight.)
//  - any other head size: one warp per (row, query head), scalar loads.
#include <cmath>

#include "cuda/common.h"
#include "cuda/kernels.h"
#include "cuda/reduce.cuh"
#include "cuda/vec.cuh"

namespace score::cuda {
namespace {

constexpr int kMaxHd = 256;

template <typename Elem>
__global__ void kv_store_kernel(Elem* kcache, Elem* vcache, const float* qkv, const int32_t* slot,
                                const int32_t* pos, int N, int QKV, int H, int KVH, int hd,
                                int len) {
  const int64_t idx = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (idx >= static_cast<int64_t>(N) * KVH * hd) return;
  const int d = static_cast<int>(idx % hd), h = static_cast<int>((idx / hd) % KVH);
  const int r = static_cast<int>(idx / (static_cast<int64_t>(hd) * KVH));
  const int64_t at = ((static_cast<int64_t>(slot[r]) * KVH + h) * len + pos[r]) * hd + d;
  const float* row = qkv + static_cast<int64_t>(r) * QKV + H * hd;
  store(kcache + at, row[h * hd + d]);
  store(vcache + at, row[KVH * hd + h * hd + d]);
}

// out (nullable) and / or out16 (its bf16 copy, the projection's operand).
template <typename Elem>
__global__ void attention_cached_kernel(float* out, uint16_t* out16, const float* qkv, const Elem* kcache,
                                        const Elem* vcache, const int32_t* slot,
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
  const Elem* K = kcache + base;
  const Elem* V = vcache + base;
  float acc[kMaxHd / 32];
#pragma unroll
  for (int u = 0; u < kMaxHd / 32; u++) acc[u] = 0.f;
  float m = -INFINITY, l = 0.f;
  for (int s0 = 0; s0 <= p; s0 += 32) {
    const int s = s0 + lane;
    float score = -INFINITY;
    if (s <= p) {
      const Elem* k = K + static_cast<int64_t>(s) * hd;
      float dot = 0.f;
      for (int d = 0; d < hd; d++) dot += q[d] * to_float(k[d]);
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
      const Elem* vr = V + static_cast<int64_t>(s0 + j) * hd;
#pragma unroll
      for (int u = 0; u < kMaxHd / 32; u++) {
        const int d = lane + 32 * u;
        if (d < hd) acc[u] += pj * to_float(vr[d]);
      }
    }
    m = mnew;
  }
  const float inv = 1.0f / l;
  const int64_t o = static_cast<int64_t>(r) * H * hd + h * hd;
#pragma unroll
  for (int u = 0; u < kMaxHd / 32; u++) {
    const int d = lane + 32 * u;
    if (d < hd) store_out(out, out16, o + d, acc[u] * inv);
  }
}

constexpr int kSplit = 4;  // warps per (row, head) in the split kernel

template <int HD, typename Elem>
__global__ void __launch_bounds__(kSplit * 32)
    attention_cached_split_kernel(float* out, uint16_t* out16, const float* qkv, const Elem* kcache,
                                  const Elem* vcache, const int32_t* slot, const int32_t* pos,
                                  int QKV, int H, int KVH, int len, float scale) {
  constexpr int U = HD / 32;  // output dimensions per lane
  __shared__ __align__(16) float q[HD];
  __shared__ float wm[kSplit], wl[kSplit];
  __shared__ float wacc[kSplit][HD];  // each warp's unnormalised output
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int r = blockIdx.x / H, h = blockIdx.x % H, kvh = h / (H / KVH), p = pos[r];
  for (int d = threadIdx.x; d < HD; d += blockDim.x) q[d] = qkv[static_cast<int64_t>(r) * QKV + h * HD + d];
  __syncthreads();
  const int64_t base = (static_cast<int64_t>(slot[r]) * KVH + kvh) * len * HD;
  const Elem* K = kcache + base;
  const Elem* V = vcache + base;
  const float4* q4 = reinterpret_cast<const float4*>(q);
  float acc[U];
#pragma unroll
  for (int u = 0; u < U; u++) acc[u] = 0.f;
  float m = -INFINITY, l = 0.f;
  for (int s0 = warp * 32; s0 <= p; s0 += kSplit * 32) {
    const int s = s0 + lane;
    float score = -INFINITY;
    if (s <= p) {
      const Elem* k = K + static_cast<int64_t>(s) * HD;
      float dot = 0.f;
#pragma unroll
      for (int i = 0; i < HD / 4; i++) {
        const float4 a = load4(k + 4 * i), b = q4[i];
        dot += a.x * b.x + a.y * b.y + a.z * b.z + a.w * b.w;
      }
      score = dot * scale;
    }
    const float mnew = fmaxf(m, warp_max(score));
    const float corr = expf(m - mnew);  // exp(-inf) = 0 on the warp's first block
    const float e = s <= p ? expf(score - mnew) : 0.f;
    l = l * corr + warp_sum(e);
#pragma unroll
    for (int u = 0; u < U; u++) acc[u] *= corr;
    const int n = min(32, p - s0 + 1);
#pragma unroll 4
    for (int j = 0; j < n; j++) {
      const float pj = __shfl_sync(0xffffffffu, e, j);
      const Elem* vr = V + static_cast<int64_t>(s0 + j) * HD;
#pragma unroll
      for (int u = 0; u < U; u++) acc[u] += pj * to_float(vr[lane + 32 * u]);
    }
    m = mnew;
  }
  if (lane == 0) wm[warp] = m, wl[warp] = l;
#pragma unroll
  for (int u = 0; u < U; u++) wacc[warp][lane + 32 * u] = acc[u];
  __syncthreads();
  // Combine: out = sum_w e^(m_w - M) acc_w / sum_w e^(m_w - M) l_w over the warps that
  // saw a position (warp 0 always does: position 0).
  float M = -INFINITY;
#pragma unroll
  for (int w = 0; w < kSplit; w++) M = fmaxf(M, wm[w]);
  for (int d = threadIdx.x; d < HD; d += blockDim.x) {
    float L = 0.f, o = 0.f;
#pragma unroll
    for (int w = 0; w < kSplit; w++)
      if (wm[w] != -INFINITY) {
        const float f = expf(wm[w] - M);
        L += wl[w] * f;
        o += wacc[w][d] * f;
      }
    store_out(out, out16, static_cast<int64_t>(r) * H * HD + h * HD + d, o / L);
  }
}

template <typename Elem>
void store_kv(Elem* kcache, Elem* vcache, const float* qkv, const int32_t* slot, const int32_t* pos,
           int N, int QKV, int H, int KVH, int hd, int len, cudaStream_t stream) {
  const int64_t n = static_cast<int64_t>(N) * KVH * hd;
  if (n == 0) return;
  kv_store_kernel<Elem><<<ceil_div(n, 256), 256, 0, stream>>>(kcache, vcache, qkv, slot, pos, N, QKV, H,
                                                        KVH, hd, len);
  SCORE_CUDA_LAUNCH_CHECK();
}

template <typename Elem>
void attend(float* out, uint16_t* out16, const float* qkv, const Elem* kcache, const Elem* vcache,
            const int32_t* slot, const int32_t* pos, int N, int QKV, int H, int KVH, int hd, int len,
            cudaStream_t stream) {
  SCORE_CHECK(hd <= kMaxHd, Unsupported, "CUDA attention: head_dim over 256 is not supported");
  const int64_t items = static_cast<int64_t>(N) * H;
  if (items == 0) return;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  if ((hd == 32 || hd == 64 || hd == 128) && QKV % 4 == 0) {
    auto kernel = hd == 32   ? attention_cached_split_kernel<32, Elem>
                  : hd == 64 ? attention_cached_split_kernel<64, Elem>
                             : attention_cached_split_kernel<128, Elem>;
    kernel<<<static_cast<unsigned>(items), kSplit * 32, 0, stream>>>(out, out16, qkv, kcache, vcache, slot, pos, QKV,
                                                                   H, KVH, len, scale);
    SCORE_CUDA_LAUNCH_CHECK();
    return;
  }
  constexpr int kWarps = 4;
  attention_cached_kernel<Elem><<<ceil_div(items, kWarps), kWarps * 32, kWarps * hd * sizeof(float),
                            stream>>>(out, out16, qkv, kcache, vcache, slot, pos, N, QKV, H, KVH, hd, len,
                                      scale);
  SCORE_CUDA_LAUNCH_CHECK();
}

}  // namespace

void kv_store(float* kcache, float* vcache, const float* qkv, const int32_t* slot,
              const int32_t* pos, int N, int QKV, int H, int KVH, int hd, int len,
              cudaStream_t stream) {
  store_kv(kcache, vcache, qkv, slot, pos, N, QKV, H, KVH, hd, len, stream);
}
void kv_store(uint16_t* kcache, uint16_t* vcache, const float* qkv, const int32_t* slot,
              const int32_t* pos, int N, int QKV, int H, int KVH, int hd, int len,
              cudaStream_t stream) {
  store_kv(kcache, vcache, qkv, slot, pos, N, QKV, H, KVH, hd, len, stream);
}

void attention_cached_forward(float* out, const float* qkv, const float* kcache,
                              const float* vcache, const int32_t* slot, const int32_t* pos, int N,
                              int QKV, int H, int KVH, int hd, int len, cudaStream_t stream,
                              uint16_t* out16) {
  attend(out, out16, qkv, kcache, vcache, slot, pos, N, QKV, H, KVH, hd, len, stream);
}
void attention_cached_forward(float* out, const float* qkv, const uint16_t* kcache,
                              const uint16_t* vcache, const int32_t* slot, const int32_t* pos, int N,
                              int QKV, int H, int KVH, int hd, int len, cudaStream_t stream,
                              uint16_t* out16) {
  attend(out, out16, qkv, kcache, vcache, slot, pos, N, QKV, H, KVH, hd, len, stream);
}

}  // namespace score::cuda
