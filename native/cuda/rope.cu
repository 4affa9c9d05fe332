// Rotary embeddings, rotate-half convention (cpu twin: native/cpu/rope.cpp). The
// cos/sin tables are computed on the host by cpu::rope_tables and uploaded, so both
// backends rotate by bit-identical angles. Backward is the inverse rotation.
#include "cuda/common.h"
#include "cuda/kernels.h"

namespace score::cuda {
namespace {

// One thread per (row, head among q and k heads, pair i < hd/2).
__global__ void rope_kernel(float* qkv, const int32_t* pos, const float* cos, const float* sin,
                            int N, int QKV, int heads, int hd, float sign) {
  const int half = hd / 2;
  const int64_t idx = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (idx >= static_cast<int64_t>(N) * heads * half) return;
  const int i = static_cast<int>(idx % half);
  const int h = static_cast<int>((idx / half) % heads);
  const int n = static_cast<int>(idx / (static_cast<int64_t>(half) * heads));
  const float c = cos[static_cast<int64_t>(pos[n]) * half + i];
  const float s = sign * sin[static_cast<int64_t>(pos[n]) * half + i];
  float* x1 = qkv + static_cast<int64_t>(n) * QKV + h * hd + i;
  float* x2 = x1 + half;
  const float a = *x1, b = *x2;
  *x1 = a * c - b * s;
  *x2 = b * c + a * s;
}

void rope_apply(float* qkv, const int32_t* pos, const float* cos, const float* sin, int N, int QKV,
                int H, int KVH, int hd, float sign, cudaStream_t stream) {
  const int64_t n = static_cast<int64_t>(N) * (H + KVH) * (hd / 2);
  if (n == 0) return;
  rope_kernel<<<ceil_div(n, 256), 256, 0, stream>>>(qkv, pos, cos, sin, N, QKV, H + KVH, hd, sign);
  SCORE_CUDA_LAUNCH_CHECK();
}

}  // namespace

void rope_forward(float* qkv, const int32_t* pos, const float* cos, const float* sin, int N,
                  int QKV, int H, int KVH, int hd, cudaStream_t stream) {
  rope_apply(qkv, pos, cos, sin, N, QKV, H, KVH, hd, 1.f, stream);
}
void rope_backward(float* dqkv, const int32_t* pos, const float* cos, const float* sin, int N,
                   int QKV, int H, int KVH, int hd, cudaStream_t stream) {
  rope_apply(dqkv, pos, cos, sin, N, QKV, H, KVH, hd, -1.f, stream);
}

}  // namespace score::cuda
