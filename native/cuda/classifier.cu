// The row half of the fused classifier (cpu twin: native/cpu/classifier.cpp): the
// backend computes a chunk of logits (m, V; rows padded to a stride ld) with the GEMM,
// then this kernel, one block per row, takes max, sum exp and sum e*z (z = logit - max)
// in one pass over the row (RowAcc),
// the target's log-prob and the entropy, evaluates the per-token loss of
// score/token_loss.h in double (the same formulas, so the coefficient g = weight *
// dloss/dlogp / norm is computed here and never crosses to the host), and overwrites the
// logits with dlogits = g (onehot - softmax), or writes them in bf16 only. No (N, V)
// tensor exists: the chunk scratch is reused.
#include <cmath>
#include <cstdint>

#include "cuda/common.h"
#include "cuda/kernels.h"
#include "cuda/reduce.cuh"
#include "cuda/vec.cuh"

namespace score::cuda {
namespace {

constexpr int kThreads = 512;

struct Terms {
  double pg, kl, kl_raw, dlogp;
  bool clipped;
};

// The device twin of score::token_loss (token_loss.h).
__device__ Terms token_terms(const DeviceTokenLoss& l, int i, double logp) {
  Terms r{0, 0, 0, 0, false};
  if (!l.rl) {
    r.pg = -logp;
    r.dlogp = -1;
    return r;
  }
  const double wpg = l.w_pg ? l.w_pg[i] : 0.0, A = l.adv ? l.adv[i] : 0.0;
  if (wpg != 0 && A != 0) {
    if (l.clip_eps > 0) {
      const double ratio = exp(logp - static_cast<double>(l.old_logp[i]));
      const double rc = fmin(fmax(ratio, 1.0 - l.clip_eps), 1.0 + l.clip_eps);
      r.clipped = rc * A < ratio * A;
      r.pg = -wpg * fmin(ratio * A, rc * A);
      if (!r.clipped) r.dlogp += -wpg * A * ratio;
    } else {
      r.pg = -wpg * A * logp;
      r.dlogp += -wpg * A;
    }
  }
  if (l.ref_logp) {
    const double wkl = l.w_kl ? l.w_kl[i] : 0.0;
    const double d = static_cast<double>(l.ref_logp[i]) - logp;
    r.kl_raw = l.k3 ? exp(d) - d - 1.0 : -d;
    r.kl = wkl * r.kl_raw;
    r.dlogp += wkl * (l.k3 ? 1.0 - exp(d) : 1.0);
  }
  return r;
}

// A thread's running max m of its logits, with s = sum exp(x - m) and sez = sum
// exp(x - m) (x - m) over them: one pass over the row instead of one for the max and one
// for the sums. When a group raises the max from m to m', the sums are rescaled:
// s' = e^(m - m') s, sez' = e^(m - m') (sez + (m - m') s).
struct RowAcc {
  float m = -INFINITY, s = 0.f, sez = 0.f;
  template <int K>
  __device__ __forceinline__ void add(const float (&x)[K]) {
    float mx = x[0];
#pragma unroll
    for (int k = 1; k < K; k++) mx = fmaxf(mx, x[k]);
    if (mx > m) {
      if (m != -INFINITY) {
        const float d = m - mx, f = expf(d);
        sez = f * (sez + d * s);
        s *= f;
      }
      m = mx;
    }
#pragma unroll
    for (int k = 0; k < K; k++) {
      const float z = x[k] - m, e = expf(z);
      s += e;
      sez += e * z;
    }
  }
};

__global__ void __launch_bounds__(kThreads)
    classifier_rows_kernel(float* logits, int64_t ld, const int32_t* target, const int32_t* slot,
                           int V, DeviceTokenLoss loss, bool has_loss, ClassifierRowOut out) {
  __shared__ float fscratch[32];
  __shared__ double dscratch[32];
  __shared__ double g_shared;
  const int r = blockIdx.x;
  float* x = logits + r * ld;
  const int t = target[r];
  // 16-byte groups where rows start aligned (the backend pads them to 64 floats); the
  // last V % 4 logits (or all, unaligned) one at a time.
  const bool vec = ld % 4 == 0 && reinterpret_cast<uintptr_t>(logits) % 16 == 0;
  const int V4 = vec ? V / 4 : 0;
  RowAcc acc;
  for (int v = threadIdx.x; v < V4; v += blockDim.x) {
    const float4 q = reinterpret_cast<const float4*>(x)[v];
    const float g4[4] = {q.x, q.y, q.z, q.w};
    acc.add(g4);
  }
  for (int v = 4 * V4 + threadIdx.x; v < V; v += blockDim.x) {
    const float g1[1] = {x[v]};
    acc.add(g1);
  }
  // The row max, and every thread's sums rescaled to it (threads without logits add 0).
  const float mx = block_max(acc.m, fscratch);
  float s = 0.f, sez = 0.f;
  if (acc.m != -INFINITY) {
    const float d = acc.m - mx, f = expf(d);
    s = f * acc.s;
    sez = f * (acc.sez + d * acc.s);
  }
  const double sum = block_sum(static_cast<double>(s), dscratch);
  const double sum_ez = block_sum(static_cast<double>(sez), dscratch);
  const double log_s = log(sum);
  const double zt = static_cast<double>(x[t]) - mx;
  const double lp = zt - log_s;
  if (threadIdx.x == 0) {
    if (out.logp) out.logp[r] = static_cast<float>(lp);
    if (out.entropy) out.entropy[r] = static_cast<float>(log_s - sum_ez / sum);
    double g = 0;
    if (has_loss) {
      const int i = slot[r];
      const double w = loss.weight[i];
      const Terms tm = token_terms(loss, i, lp);
      if (out.pg) out.pg[r] = w * tm.pg;
      if (out.kl) out.kl[r] = w * tm.kl;
      if (out.kl_raw) out.kl_raw[r] = w * tm.kl_raw;
      if (out.clipped) out.clipped[r] = tm.clipped ? w : 0.0;
      g = w * tm.dlogp * loss.inv_norm;
    }
    g_shared = g;
  }
  if (!has_loss) return;
  __syncthreads();
  const double g = g_shared;
  // -g e / s everywhere; at the target g (s - e_t) / s, in double against cancellation.
  const float a = static_cast<float>(-g / sum);
  const double e_t = exp(zt);
  const float at_t = static_cast<float>(g * (sum - e_t) / sum);
  __syncthreads();  // every thread has read x[t] before it is overwritten
  // dlogits into the bf16 rows when given (the only copy the products then read: the float
  // logits stay as they are), else over the logits.
  uint16_t* x16 = out.dlogits16 ? out.dlogits16 + r * ld : nullptr;  // aligned as x when vec
  for (int v = threadIdx.x; v < V4; v += blockDim.x) {
    float4 q = reinterpret_cast<const float4*>(x)[v];
    q.x = 4 * v == t ? at_t : a * expf(q.x - mx);
    q.y = 4 * v + 1 == t ? at_t : a * expf(q.y - mx);
    q.z = 4 * v + 2 == t ? at_t : a * expf(q.z - mx);
    q.w = 4 * v + 3 == t ? at_t : a * expf(q.w - mx);
    if (x16)
      reinterpret_cast<uint2*>(x16)[v] = bf16x4(q);
    else
      reinterpret_cast<float4*>(x)[v] = q;
  }
  for (int v = 4 * V4 + threadIdx.x; v < V; v += blockDim.x) {
    const float d = v == t ? at_t : a * expf(x[v] - mx);
    if (x16)
      store(x16 + v, d);
    else
      x[v] = d;
  }
}

template <typename T>  // float, or uint16_t: bf16 bits (nearest even)
__global__ void gather_rows_kernel(T* dst, const float* src, const int32_t* rows, int m, int C) {
  const int64_t idx = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (idx >= static_cast<int64_t>(m) * C) return;
  const int64_t r = idx / C, c = idx % C;
  store(dst + idx, src[static_cast<int64_t>(rows[r]) * C + c]);
}

__global__ void scatter_add_rows_kernel(float* dst, const float* src, const int32_t* rows, int m,
                                        int C) {
  const int64_t idx = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (idx >= static_cast<int64_t>(m) * C) return;
  const int64_t r = idx / C, c = idx % C;
  dst[static_cast<int64_t>(rows[r]) * C + c] += src[idx];
}

template <typename T>
void gather(T* dst, const float* src, const int32_t* rows, int m, int C, cudaStream_t stream) {
  const int64_t n = static_cast<int64_t>(m) * C;
  if (n == 0) return;
  gather_rows_kernel<T><<<ceil_div(n, 256), 256, 0, stream>>>(dst, src, rows, m, C);
  SCORE_CUDA_LAUNCH_CHECK();
}

}  // namespace

void classifier_rows(float* logits, int64_t ld, const int32_t* target, const int32_t* slot, int m,
                     int V, const DeviceTokenLoss* loss, const ClassifierRowOut& out,
                     cudaStream_t stream) {
  if (m == 0) return;
  classifier_rows_kernel<<<m, kThreads, 0, stream>>>(logits, ld, target, slot, V,
                                                     loss ? *loss : DeviceTokenLoss{},
                                                     loss != nullptr, out);
  SCORE_CUDA_LAUNCH_CHECK();
}

void gather_rows(float* dst, const float* src, const int32_t* rows, int m, int C,
                 cudaStream_t stream) {
  gather(dst, src, rows, m, C, stream);
}
void gather_rows(uint16_t* dst, const float* src, const int32_t* rows, int m, int C,
                 cudaStream_t stream) {
  gather(dst, src, rows, m, C, stream);
}

void scatter_add_rows(float* dst, const float* src, const int32_t* rows, int m, int C,
                      cudaStream_t stream) {
  const int64_t n = static_cast<int64_t>(m) * C;
  if (n == 0) return;
  scatter_add_rows_kernel<<<ceil_div(n, 256), 256, 0, stream>>>(dst, src, rows, m, C);
  SCORE_CUDA_LAUNCH_CHECK();
}

}  // namespace score::cuda
