// Causal grouped-query attention, the materialising version (cpu twin:
// native/cpu/attention.cpp): the (B, H, T, T) probabilities are kept for backward.
// The four products per direction run on the batched GEMM of gemm.cu (batch z =
// b*H + h; query head h reads kv head h / (H/KVH) through BatchStride.group), and
// the softmax and its backward are row kernels. The products compute full T x T
// blocks (twice the causal work); the masked half is zero in the probabilities.
//
// Backward, with g = H / KVH query heads per kv head: dK and dV sum over the g query
// heads of a group, so those products run once per group member (z over b*KVH),
// each accumulating into its kv head without two blocks writing the same output.
#include <cmath>

#include "cuda/common.h"
#include "cuda/kernels.h"
#include "cuda/reduce.cuh"

namespace score::cuda {
namespace {

// In place on rows (z, t) of scores (Z, T, T) already scaled: causal softmax over
// s <= t, zeros for s > t. One warp per row.
__global__ void causal_softmax_kernel(float* att, int Z, int T) {
  const int64_t row = blockIdx.x * 8LL + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (row >= static_cast<int64_t>(Z) * T) return;
  const int t = static_cast<int>(row % T);
  float* r = att + row * T;
  float mx = -INFINITY;
  for (int s = lane; s <= t; s += 32) mx = fmaxf(mx, r[s]);
  mx = warp_max(mx);
  float sum = 0.f;
  for (int s = lane; s <= t; s += 32) {
    const float e = expf(r[s] - mx);
    r[s] = e;
    sum += e;
  }
  const float inv = 1.0f / warp_sum(sum);
  for (int s = lane; s < T; s += 32) r[s] = s <= t ? r[s] * inv : 0.f;
}

// In place: datt -> dscores = scale * att * (datt - sum_s att * datt) for s <= t.
__global__ void softmax_backward_kernel(float* datt, const float* att, int Z, int T, float scale) {
  const int64_t row = blockIdx.x * 8LL + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (row >= static_cast<int64_t>(Z) * T) return;
  const int t = static_cast<int>(row % T);
  float* d = datt + row * T;
  const float* a = att + row * T;
  float dot = 0.f;
  for (int s = lane; s <= t; s += 32) dot += a[s] * d[s];
  dot = warp_sum(dot);
  for (int s = lane; s < T; s += 32) d[s] = s <= t ? scale * a[s] * (d[s] - dot) : 0.f;
}

BatchStride per_head(int64_t outer, int64_t inner, int n_inner, int group = 1) {
  BatchStride b;
  b.outer = outer, b.inner = inner, b.n_inner = n_inner, b.group = group;
  return b;
}

}  // namespace

void attention_forward(float* out, float* att, const float* qkv, int B, int T, int H, int KVH,
                       int hd, MatmulPrecision prec, cudaStream_t stream) {
  const int Q = H * hd, QKV = (H + 2 * KVH) * hd, grp = H / KVH, Z = B * H;
  const int64_t TT = static_cast<int64_t>(T) * T, TQKV = static_cast<int64_t>(T) * QKV;
  {  // att (z, T, T) = scale * q (T, hd) @ k^T
    Gemm g;
    g.A = qkv, g.lda = QKV, g.a_kcontig = true, g.ab = per_head(TQKV, hd, H);
    g.B = qkv + Q, g.ldb = QKV, g.b_ncontig = false, g.bb = per_head(TQKV, hd, H, grp);
    g.C = att, g.ldc = T, g.cb = per_head(TT, 0, 1);
    g.M = T, g.N = T, g.K = hd, g.batch = Z, g.alpha = 1.0f / std::sqrt(static_cast<float>(hd));
    gemm(g, prec, stream);
  }
  causal_softmax_kernel<<<ceil_div(static_cast<int64_t>(Z) * T, 8), 256, 0, stream>>>(att, Z, T);
  SCORE_CUDA_LAUNCH_CHECK();
  {  // out (T, hd) of head h = att (T, T) @ v (T, hd)
    Gemm g;
    g.A = att, g.lda = T, g.a_kcontig = true, g.ab = per_head(TT, 0, 1);
    g.B = qkv + Q + KVH * hd, g.ldb = QKV, g.b_ncontig = true, g.bb = per_head(TQKV, hd, H, grp);
    g.C = out, g.ldc = Q, g.cb = per_head(static_cast<int64_t>(T) * Q, hd, H);
    g.M = T, g.N = hd, g.K = T, g.batch = Z;
    gemm(g, prec, stream);
  }
}

void attention_backward(float* dqkv, float* datt, const float* dout, const float* qkv,
                        const float* att, int B, int T, int H, int KVH, int hd,
                        MatmulPrecision prec, cudaStream_t stream) {
  const int Q = H * hd, QKV = (H + 2 * KVH) * hd, grp = H / KVH, Z = B * H;
  const int64_t TT = static_cast<int64_t>(T) * T, TQKV = static_cast<int64_t>(T) * QKV;
  const int64_t TQ = static_cast<int64_t>(T) * Q;
  const float* v = qkv + Q + KVH * hd;
  {  // datt (T, T) = dout (T, hd) @ v^T
    Gemm g;
    g.A = dout, g.lda = Q, g.a_kcontig = true, g.ab = per_head(TQ, hd, H);
    g.B = v, g.ldb = QKV, g.b_ncontig = false, g.bb = per_head(TQKV, hd, H, grp);
    g.C = datt, g.ldc = T, g.cb = per_head(TT, 0, 1);
    g.M = T, g.N = T, g.K = hd, g.batch = Z;
    gemm(g, prec, stream);
  }
  for (int gi = 0; gi < grp; gi++) {  // dv (T, hd) += att^T (T, T) @ dout (T, hd), per group member
    Gemm g;
    g.A = att + gi * TT, g.lda = T, g.a_kcontig = false, g.ab = per_head(H * TT, grp * TT, KVH);
    g.B = dout + gi * hd, g.ldb = Q, g.b_ncontig = true, g.bb = per_head(TQ, grp * hd, KVH);
    g.C = dqkv + Q + KVH * hd, g.ldc = QKV, g.cb = per_head(TQKV, hd, KVH);
    g.M = T, g.N = hd, g.K = T, g.batch = B * KVH, g.accumulate = true;
    gemm(g, prec, stream);
  }
  softmax_backward_kernel<<<ceil_div(static_cast<int64_t>(Z) * T, 8), 256, 0, stream>>>(
      datt, att, Z, T, 1.0f / std::sqrt(static_cast<float>(hd)));
  SCORE_CUDA_LAUNCH_CHECK();
  {  // dq (T, hd) += dscores (T, T) @ k (T, hd)
    Gemm g;
    g.A = datt, g.lda = T, g.a_kcontig = true, g.ab = per_head(TT, 0, 1);
    g.B = qkv + Q, g.ldb = QKV, g.b_ncontig = true, g.bb = per_head(TQKV, hd, H, grp);
    g.C = dqkv, g.ldc = QKV, g.cb = per_head(TQKV, hd, H);
    g.M = T, g.N = hd, g.K = T, g.batch = Z, g.accumulate = true;
    gemm(g, prec, stream);
  }
  for (int gi = 0; gi < grp; gi++) {  // dk (T, hd) += dscores^T (T, T) @ q (T, hd)
    Gemm g;
    g.A = datt + gi * TT, g.lda = T, g.a_kcontig = false, g.ab = per_head(H * TT, grp * TT, KVH);
    g.B = qkv + gi * hd, g.ldb = QKV, g.b_ncontig = true, g.bb = per_head(TQKV, grp * hd, KVH);
    g.C = dqkv + Q, g.ldc = QKV, g.cb = per_head(TQKV, hd, KVH);
    g.M = T, g.N = hd, g.K = T, g.batch = B * KVH, g.accumulate = true;
    gemm(g, prec, stream);
  }
}

}  // namespace score::cuda
