// LayerNorm with weight and bias (cpu twin: native/cpu/layernorm.cpp). One warp per
// row; two-pass variance like the CPU. The weight/bias gradients are summed per
// block in shared memory and added to global memory once per block.
#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "cuda/common.h"
#include "cuda/kernels.h"
#include "cuda/reduce.cuh"
#include "cuda/vec.cuh"

namespace score::cuda {
namespace {

constexpr int kWarps = 8;
constexpr int kMaxSharedC = 4096;  // dw/db block partials in shared memory up to this width

// With res: x += res first, in place (each lane writes and later reads its own columns).
__global__ void layernorm_forward_kernel(float* out, uint16_t* out16, float* mean, float* rstd,
                                         float* inp, const float* res, const float* w,
                                         const float* b, int N, int C, float eps) {
  const int lane = threadIdx.x % 32;
  const int n = blockIdx.x * kWarps + threadIdx.x / 32;
  if (n >= N) return;
  float* x = inp + static_cast<int64_t>(n) * C;
  float s = 0.f;
  for (int c = lane; c < C; c += 32) {
    if (res) x[c] += res[static_cast<int64_t>(n) * C + c];
    s += x[c];
  }
  const float m = warp_sum(s) / C;
  float v = 0.f;
  for (int c = lane; c < C; c += 32) v += (x[c] - m) * (x[c] - m);
  const float r = rsqrtf(warp_sum(v) / C + eps);
  const int64_t row = static_cast<int64_t>(n) * C;
  for (int c = lane; c < C; c += 32) {
    const float y = (x[c] - m) * r * w[c] + b[c];
    store_out(out, out16, row + c, y);
  }
  if (lane == 0) {
    if (mean) mean[n] = m;
    rstd[n] = r;
  }
}

__global__ void layernorm_backward_kernel(float* dinp, uint16_t* dinp16, float* dw, float* db,
                                          const float* dout, const float* inp, const float* w,
                                          const float* mean, const float* rstd, int N, int C) {
  extern __shared__ float part[];  // (2C): dw, db partials of this block
  const bool shared = C <= kMaxSharedC;
  if (shared)
    for (int c = threadIdx.x; c < 2 * C; c += blockDim.x) part[c] = 0.f;
  __syncthreads();
  const int lane = threadIdx.x % 32;
  for (int n = blockIdx.x * kWarps + threadIdx.x / 32; n < N; n += gridDim.x * kWarps) {
    const float* x = inp + static_cast<int64_t>(n) * C;
    const float* d = dout + static_cast<int64_t>(n) * C;
    const float m = mean[n], r = rstd[n];
    if (dinp) {
      float s1 = 0.f, s2 = 0.f;
      for (int c = lane; c < C; c += 32) {
        const float dxhat = d[c] * w[c];
        s1 += dxhat;
        s2 += dxhat * ((x[c] - m) * r);
      }
      const float m1 = warp_sum(s1) / C, m2 = warp_sum(s2) / C;
      const int64_t row = static_cast<int64_t>(n) * C;
      for (int c = lane; c < C; c += 32) {
        const float v = dinp[row + c] + r * (d[c] * w[c] - m1 - (x[c] - m) * r * m2);
        dinp[row + c] = v;
        if (dinp16) store(dinp16 + row + c, v);
      }
    }
    for (int c = lane; c < C; c += 32) {
      const float gw = d[c] * ((x[c] - m) * r), gb = d[c];
      if (shared) {
        atomicAdd(part + c, gw);
        atomicAdd(part + C + c, gb);
      } else {
        if (dw) atomicAdd(dw + c, gw);
        if (db) atomicAdd(db + c, gb);
      }
    }
  }
  __syncthreads();
  if (shared)
    for (int c = threadIdx.x; c < C; c += blockDim.x) {
      if (dw) atomicAdd(dw + c, part[c]);
      if (db) atomicAdd(db + c, part[C + c]);
    }
}

// The same for rows of C = 128 G floats (G <= 8: the presets' 768 is G = 6), rows and
// pointers 16-byte aligned: a lane keeps its G float4 groups of x and dout in registers
// for the row's two sums and its writes, and the weight / bias gradient of its columns in
// registers over every row its warp walks; those partials meet in shared memory once per
// warp and in global memory once per block (the generic kernel above adds each element
// into shared memory, which made it 3 times slower than its memory traffic).
constexpr int kVecWarps = 4;  // the register path: up to ~160 registers a thread

template <int G>
__global__ void __launch_bounds__(kVecWarps * 32)
    layernorm_backward_vec_kernel(float* dinp, uint16_t* dinp16, float* dw, float* db,
                                  const float* dout, const float* inp, const float* w,
                                  const float* mean, const float* rstd, int N) {
  constexpr int C = 128 * G;
  __shared__ float part[2 * C];  // dw, db partials of this block
  for (int c = threadIdx.x; c < 2 * C; c += blockDim.x) part[c] = 0.f;
  __syncthreads();
  const int lane = threadIdx.x % 32;
  float4 wv[G], gw[G], gb[G];
#pragma unroll
  for (int k = 0; k < G; k++) {
    wv[k] = reinterpret_cast<const float4*>(w)[lane + 32 * k];
    gw[k] = gb[k] = make_float4(0.f, 0.f, 0.f, 0.f);
  }
  for (int n = blockIdx.x * kVecWarps + threadIdx.x / 32; n < N; n += gridDim.x * kVecWarps) {
    const float4* x4 = reinterpret_cast<const float4*>(inp + static_cast<int64_t>(n) * C);
    const float4* d4 = reinterpret_cast<const float4*>(dout + static_cast<int64_t>(n) * C);
    float4 xh[G], dv[G];
#pragma unroll
    for (int k = 0; k < G; k++) xh[k] = x4[lane + 32 * k], dv[k] = d4[lane + 32 * k];
    const float m = mean[n], r = rstd[n];
    float s1 = 0.f, s2 = 0.f;
#pragma unroll
    for (int k = 0; k < G; k++) {
      xh[k] = make_float4((xh[k].x - m) * r, (xh[k].y - m) * r, (xh[k].z - m) * r, (xh[k].w - m) * r);
      const float4 dx = make_float4(dv[k].x * wv[k].x, dv[k].y * wv[k].y, dv[k].z * wv[k].z, dv[k].w * wv[k].w);
      s1 += dx.x + dx.y + dx.z + dx.w;
      s2 += dx.x * xh[k].x + dx.y * xh[k].y + dx.z * xh[k].z + dx.w * xh[k].w;
      gw[k].x += dv[k].x * xh[k].x, gw[k].y += dv[k].y * xh[k].y;
      gw[k].z += dv[k].z * xh[k].z, gw[k].w += dv[k].w * xh[k].w;
      gb[k].x += dv[k].x, gb[k].y += dv[k].y, gb[k].z += dv[k].z, gb[k].w += dv[k].w;
    }
    if (!dinp) continue;
    const float m1 = warp_sum(s1) / C, m2 = warp_sum(s2) / C;
    float4* di = reinterpret_cast<float4*>(dinp + static_cast<int64_t>(n) * C);
#pragma unroll
    for (int k = 0; k < G; k++) {
      float4 o = di[lane + 32 * k];
      o.x += r * (dv[k].x * wv[k].x - m1 - xh[k].x * m2);
      o.y += r * (dv[k].y * wv[k].y - m1 - xh[k].y * m2);
      o.z += r * (dv[k].z * wv[k].z - m1 - xh[k].z * m2);
      o.w += r * (dv[k].w * wv[k].w - m1 - xh[k].w * m2);
      di[lane + 32 * k] = o;
      if (dinp16) reinterpret_cast<uint2*>(dinp16 + static_cast<int64_t>(n) * C)[lane + 32 * k] = bf16x4(o);
    }
  }
#pragma unroll
  for (int k = 0; k < G; k++) {
    float* pw = part + 4 * (lane + 32 * k);
    float* pb = pw + C;
    atomicAdd(pw, gw[k].x), atomicAdd(pw + 1, gw[k].y), atomicAdd(pw + 2, gw[k].z), atomicAdd(pw + 3, gw[k].w);
    atomicAdd(pb, gb[k].x), atomicAdd(pb + 1, gb[k].y), atomicAdd(pb + 2, gb[k].z), atomicAdd(pb + 3, gb[k].w);
  }
  __syncthreads();
  for (int c = threadIdx.x; c < C; c += blockDim.x) {
    if (dw) atomicAdd(dw + c, part[c]);
    if (db) atomicAdd(db + c, part[C + c]);
  }
}

// Forward for rows of C = 128 G floats, 16-byte aligned: a lane loads its G float4 groups
// of the row at once and keeps them in registers for the mean, the variance (two-pass, as
// the CPU) and the output. The generic kernel reads the row three times, a load at a time
// per lane: 12 us a call at decode's 64 rows on an H200, a quarter of a decode step.
template <int G>
__global__ void layernorm_forward_vec_kernel(float* out, uint16_t* out16, float* mean, float* rstd,
                                             float* inp, const float* res, const float* w,
                                             const float* b, int N, float eps) {
  constexpr int C = 128 * G;
  const int lane = threadIdx.x % 32;
  const int n = blockIdx.x * kWarps + threadIdx.x / 32;
  if (n >= N) return;
  float4* x4 = reinterpret_cast<float4*>(inp + static_cast<int64_t>(n) * C);
  const float4* r4 = res ? reinterpret_cast<const float4*>(res + static_cast<int64_t>(n) * C) : nullptr;
  float4 xv[G];
  float s = 0.f;
#pragma unroll
  for (int k = 0; k < G; k++) {
    xv[k] = x4[lane + 32 * k];
    if (res) {
      const float4 r = r4[lane + 32 * k];
      xv[k].x += r.x, xv[k].y += r.y, xv[k].z += r.z, xv[k].w += r.w;
      x4[lane + 32 * k] = xv[k];
    }
    s += xv[k].x + xv[k].y + xv[k].z + xv[k].w;
  }
  const float m = warp_sum(s) / C;
  float v = 0.f;
#pragma unroll
  for (int k = 0; k < G; k++) {
    const float a = xv[k].x - m, bb = xv[k].y - m, c = xv[k].z - m, d = xv[k].w - m;
    v += a * a + bb * bb + c * c + d * d;
  }
  const float r = rsqrtf(warp_sum(v) / C + eps);
  const int64_t row = static_cast<int64_t>(n) * C;
  const float4* w4 = reinterpret_cast<const float4*>(w);
  const float4* b4 = reinterpret_cast<const float4*>(b);
#pragma unroll
  for (int k = 0; k < G; k++) {
    const float4 wk = w4[lane + 32 * k], bk = b4[lane + 32 * k];
    const float4 y = make_float4((xv[k].x - m) * r * wk.x + bk.x, (xv[k].y - m) * r * wk.y + bk.y,
                                 (xv[k].z - m) * r * wk.z + bk.z, (xv[k].w - m) * r * wk.w + bk.w);
    if (out) reinterpret_cast<float4*>(out + row)[lane + 32 * k] = y;
    if (out16) reinterpret_cast<uint2*>(out16 + row)[lane + 32 * k] = bf16x4(y);
  }
  if (lane == 0) {
    if (mean) mean[n] = m;
    rstd[n] = r;
  }
}

// The register paths take rows of C = 128 G floats, G in 1..8, and 16-byte aligned rows:
// calls f(std::integral_constant<int, G>()) and returns true, or returns false.
template <typename F>
bool with_groups(int C, bool rows_aligned, F&& f) {
  if (C % 128 != 0 || C > 1024 || !rows_aligned) return false;
  switch (C / 128) {
    case 1: f(std::integral_constant<int, 1>()); break;
    case 2: f(std::integral_constant<int, 2>()); break;
    case 3: f(std::integral_constant<int, 3>()); break;
    case 4: f(std::integral_constant<int, 4>()); break;
    case 5: f(std::integral_constant<int, 5>()); break;
    case 6: f(std::integral_constant<int, 6>()); break;
    case 7: f(std::integral_constant<int, 7>()); break;
    default: f(std::integral_constant<int, 8>()); break;
  }
  return true;
}

}  // namespace

void layernorm_forward(float* out, float* mean, float* rstd, float* inp, const float* w,
                       const float* b, int N, int C, double eps, cudaStream_t stream,
                       uint16_t* out16, const float* residual) {
  if (N == 0) return;
  const float e = static_cast<float>(eps);
  const bool al = aligned(out, 16) && aligned(out16, 8) && aligned(inp, 16) && aligned(residual, 16) &&
                  aligned(w, 16) && aligned(b, 16);  // (a null pointer counts as aligned)
  if (with_groups(C, al, [&](auto g) {
        constexpr int G = decltype(g)::value;
        layernorm_forward_vec_kernel<G><<<ceil_div(N, kWarps), kWarps * 32, 0, stream>>>(out, out16, mean, rstd,
                                                                                      inp, residual, w, b, N, e);
        SCORE_CUDA_LAUNCH_CHECK();
      }))
    return;
  layernorm_forward_kernel<<<ceil_div(N, kWarps), kWarps * 32, 0, stream>>>(out, out16, mean, rstd,
                                                                           inp, residual, w, b, N, C, e);
  SCORE_CUDA_LAUNCH_CHECK();
}

void layernorm_backward(float* dinp, float* dw, float* db, const float* dout, const float* inp,
                        const float* w, const float* mean, const float* rstd, int N, int C,
                        cudaStream_t stream, uint16_t* dinp16) {
  if (N == 0) return;
  const bool al = aligned(dinp, 16) && aligned(dinp16, 8) && aligned(dout, 16) && aligned(inp, 16) &&
                  aligned(w, 16);  // (a null pointer counts as aligned)
  if (with_groups(C, al, [&](auto g) {
        constexpr int G = decltype(g)::value;
        // Fewer blocks than rows / 4: each warp walks several rows, so its partials are
        // flushed once for all of them (396: 3 blocks of 4 warps on each of 132 SMs, the
        // registers' limit at G = 6).
        const int blocks = std::min(ceil_div(N, kVecWarps), 396);
        layernorm_backward_vec_kernel<G><<<blocks, kVecWarps * 32, 0, stream>>>(dinp, dinp16, dw, db, dout,
                                                                                 inp, w, mean, rstd, N);
        SCORE_CUDA_LAUNCH_CHECK();
      }))
    return;
  const int blocks = std::min(ceil_div(N, kWarps), 512);
  const size_t smem = C <= kMaxSharedC ? 2 * sizeof(float) * C : 0;
  layernorm_backward_kernel<<<blocks, kWarps * 32, smem, stream>>>(dinp, dinp16, dw, db, dout, inp,
                                                                   w, mean, rstd, N, C);
  SCORE_CUDA_LAUNCH_CHECK();
}

}  // namespace score::cuda
