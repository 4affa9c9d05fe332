// Shared by the kernels that move floats in 16-byte groups, and by those that write bf16
// copies for cuBLASLt (to_bf16, the classifier's dlogits, AdamW's weights).
#pragma once
#include <cuda_bf16.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>

namespace score::cuda {

inline bool aligned(const void* p, int bytes) { return reinterpret_cast<uintptr_t>(p) % bytes == 0; }

// n floats walked with a grid-stride loop in groups of 4 (16-byte loads and stores) when
// every pointer is 16-byte aligned: n4 = the number of groups (0 when unaligned), the last
// n - 4 n4 floats one at a time.
struct Span {
  size_t n, n4;
  __device__ size_t first() const { return blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; }
  __device__ size_t stride() const { return static_cast<size_t>(gridDim.x) * blockDim.x; }
};
inline Span span(size_t n, bool vec) { return {n, vec ? n / 4 : 0}; }
// Blocks of 256 threads for one pass over sp (at most 16384: the loop strides the rest).
inline int blocks_for(const Span& sp) {
  const size_t work = sp.n4 + (sp.n - 4 * sp.n4);
  return static_cast<int>(std::min<size_t>((work + 255) / 256, 16384));
}

// x rounded to bf16 (nearest even), as bits.
__device__ __forceinline__ uint32_t bf16_bits(float x) {
  return __bfloat16_as_ushort(__float2bfloat16_rn(x));
}
// Four of them for one 8-byte store (the lower address holds the lower half).
__device__ __forceinline__ uint2 bf16x4(float4 v) {
  uint2 u;
  u.x = bf16_bits(v.x) | bf16_bits(v.y) << 16;
  u.y = bf16_bits(v.z) | bf16_bits(v.w) << 16;
  return u;
}

// bf16 bits as a float (exact), and four of them from one 8-byte load.
__device__ __forceinline__ float bf16_float(uint16_t b) { return __uint_as_float(uint32_t(b) << 16); }
__device__ __forceinline__ float4 bf16x4_floats(uint2 u) {
  return make_float4(__uint_as_float(u.x << 16), __uint_as_float(u.x & 0xffff0000u),
                     __uint_as_float(u.y << 16), __uint_as_float(u.y & 0xffff0000u));
}

// Elements held as float or as bf16 bits (uint16_t), for kernels written once for both:
// read as a float (bf16 exactly), stored from a float (bf16 rounded to nearest even), and
// four consecutive read-only ones from one aligned 16-byte (float) or 8-byte (bf16) load.
__device__ __forceinline__ float to_float(float x) { return x; }
__device__ __forceinline__ float to_float(uint16_t x) { return bf16_float(x); }
__device__ __forceinline__ void store(float* p, float x) { *p = x; }
__device__ __forceinline__ void store(uint16_t* p, float x) { *p = static_cast<uint16_t>(bf16_bits(x)); }
__device__ __forceinline__ float4 load4(const float* p) { return __ldg(reinterpret_cast<const float4*>(p)); }
__device__ __forceinline__ float4 load4(const uint16_t* p) {
  return bf16x4_floats(__ldg(reinterpret_cast<const uint2*>(p)));
}
// Value i of a result into out and / or its bf16 copy out16, whichever is given.
__device__ __forceinline__ void store_out(float* out, uint16_t* out16, int64_t i, float v) {
  if (out) out[i] = v;
  if (out16) store(out16 + i, v);
}

}  // namespace score::cuda
