// Causal grouped-query attention, fused ("flash") version: the same function as
// attention.cu (the materialising reference, cpu twin native/cpu/attention.cpp) without
// ever writing the (B, H, T, T) scores or probabilities. Written for this project after
// the FlashAttention-2 scheme (Dao, 2023); no code was taken from other projects.
//
// Notation: qkv (B, T, QKV) with QKV = (H + 2 KVH) hd, row b*T + t holding
//   q heads [0, H) at columns h*hd, k heads at Q + kvh*hd, v heads at Q + KVH*hd + kvh*hd
//   (Q = H*hd); query head h reads kv head kvh = h / (H / KVH) (repeat_kv semantics);
//   out / dout (B, T, Q); lse, delta (B, H, T); scale = 1 / sqrt(hd).
//
// Forward (one block per (query tile, head, sequence)): the block keeps its R query rows
// in shared memory and walks the key tiles 0..(its own tile), each staged into shared
// memory. Key tiles after the diagonal are never visited (they are fully masked): that
// is the causal half the materialising version computes and throws away. Per tile:
// S = scale Q K^T in registers, mask, then the online softmax: the running row max m
// and row sum l are updated, the accumulated output is rescaled by exp(m_old - m_new)
// and O += exp(S - m_new) V. At the end O / l is written, and lse = m + log(l) (the
// row's log-sum-exp) is saved: that one float per row is all backward needs to rebuild
// any probability, P = exp(S - lse).
//
// Backward (one block per (key tile, kv head, sequence)): the block keeps its R keys and
// values in shared memory and walks, for each query head of its kv group, the query
// tiles from its own diagonal to the end (earlier query tiles see none of its keys).
// Per tile it recomputes S^T and P^T = exp(scale K Q^T - lse) for its keys, and
//   dV += P^T dO,  dP^T = V dO^T,  dS^T = scale P^T (dP^T - delta),  dK += dS^T Q,
//   dQ += dS K  (added atomically: every key tile of the row contributes),
// where delta = rowsum(dO * O) (a small kernel first, which also clears dQ) equals
// rowsum(P * dP), the term of the softmax backward. dK and dV of a key tile are summed
// over the whole kv group in registers and written once, so no two blocks write the same
// dK/dV element, and nothing needs zeroing before backward.
//
// Warps: each warp owns 16 rows of the block's tile (query rows in forward, key rows in
// backward) and computes 16 x n products in the register layout of the tensor-core
// instruction mma.m16n8k16 (C fragment: lane (g = lane/4, t = lane%4) holds rows g and
// g+8, columns 2t and 2t+1 of every 8-column tile). The layout is the same in both
// precisions, so masking, softmax and bookkeeping are shared:
//  - BF16 (the default MatmulPrecision): operands are rounded to bf16 (nearest even) when
//    staged into shared memory, as the GEMM of the materialising path rounds them, and
//    multiplied on the tensor cores with float32 accumulation. P and dS are rounded to
//    bf16 where they feed a product (the materialising path rounds its float32 att and
//    dscores the same way when its GEMM stages them). Tiles of R = 64 rows, 4 warps.
//  - FP32 (the verification path): float operands in shared memory and scalar fmaf in
//    the same fragment layout; P and dS go through a per-warp shared scratch to be read
//    as the A operand. Tiles of R = 32 rows, 2 warps (keeps shared memory under the
//    A100's limit at hd = 128). Matches the CPU twin to float rounding.
// Softmax statistics, lse, delta and all accumulators are float32 in both.
//
// Head sizes: hd is padded with zeros to D = 32, 64 or 128 (zero columns change no dot
// product and produce output columns that are not written); hd > 128 is not supported
// here (flash_attention_supported) and the backend keeps the materialising kernel.
#include <cuda_bf16.h>

#include <cmath>
#include <cstdint>
#include <type_traits>

#include "cuda/attention_flash.h"
#include "cuda/common.h"
#include "cuda/kernels.h"
#include "cuda/reduce.cuh"
#include "cuda/vec.cuh"
#include "score/errors.h"

namespace score::cuda {
namespace {

using bf16 = __nv_bfloat16;

// Tile shape per operand type E (bf16 or float in shared memory).
template <typename E>
struct Tile {
  static constexpr bool kBF16 = std::is_same_v<E, bf16>;
  static constexpr int R = kBF16 ? 64 : 32;  // rows per tile (queries and keys alike)
  static constexpr int W = R / 16;           // warps per block, 16 rows each
  // Shared rows are padded by 16 bytes (and start 16-byte aligned, as ldmatrix needs):
  // with D/2 a multiple of 32 words, each row starts 4 banks after the one above, so the 8
  // rows x 16 bytes ldmatrix reads per step (and the fp32 path's 8 rows x 4 lanes) hit 32
  // different banks.
  static constexpr int kPad = 16 / static_cast<int>(sizeof(E));
};

template <typename E>
__device__ __forceinline__ E to_e(float x) {
  if constexpr (std::is_same_v<E, bf16>)
    return __float2bfloat16_rn(x);
  else
    return x;
}

// A matrix in shared memory: element (i, j) at s[i*ld + j] (Row) or s[j*ld + i] (Col).
// Products read their A operand as (m, k) and their B operand as (k, n).
enum class Lay { Row, Col };

template <Lay L, typename E>
__device__ __forceinline__ E elem(const E* s, int ld, int i, int j) {
  return L == Lay::Row ? s[i * ld + j] : s[j * ld + i];
}

__device__ __forceinline__ uint32_t pack_bf16(bf16 lo, bf16 hi) {
  return static_cast<uint32_t>(__bfloat16_as_ushort(lo)) |
         (static_cast<uint32_t>(__bfloat16_as_ushort(hi)) << 16);
}
__device__ __forceinline__ uint32_t pack_f32(float lo, float hi) {  // rounds to nearest even
  const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);             // .x (lo) at the low half
  return pack_bf16(v.x, v.y);
}
// mma.m16n8k16, bf16 inputs, float32 accumulate, c += a b. Fragments (PTX ISA, "Matrix
// fragments for mma.m16n8k16 with floating point type"), g = lane / 4, t = lane % 4:
//   a[0]: A(g, 2t..2t+1)   a[1]: A(g+8, 2t..)   a[2]: A(g, 2t+8..)   a[3]: A(g+8, 2t+8..)
//   b[0]: B(2t..2t+1, g)   b[1]: B(2t+8.., g)
//   c[0], c[1]: C(g, 2t), C(g, 2t+1)             c[2], c[3]: C(g+8, 2t), C(g+8, 2t+1)
__device__ __forceinline__ void mma_bf16(float (&c)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
      "{%8, %9}, {%0, %1, %2, %3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

// ldmatrix.x4: four 8x8 bf16 matrices from shared memory in one instruction. Lane 8i + k
// gives the address of row k of matrix i (16 bytes, 16-byte aligned); r[i] receives this
// lane's pair of matrix i: row g, columns 2t..2t+1, or with Trans column g, rows 2t..2t+1.
// Before, these registers were built from 32-bit and 16-bit loads (pairs of adjacent or
// strided elements): the same bits, in one shared-memory instruction instead of 4 to 16.
template <bool Trans>
__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const bf16* row) {
  if constexpr (Trans)
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(static_cast<uint32_t>(__cvta_generic_to_shared(row))));
  else
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(static_cast<uint32_t>(__cvta_generic_to_shared(row))));
}
// The A fragment of rows m0..m0+15, columns k0..k0+15 (a[0..3] as mma_bf16 reads them):
// matrix i = rows m0 + 8 (i & 1), columns k0 + 8 (i >> 1). Col (A(i, j) at s[j*ld + i])
// stores A^T, whose 8x8 blocks are loaded transposed.
template <Lay L>
__device__ __forceinline__ void load_a(uint32_t (&a)[4], const bf16* s, int ld, int m0, int k0) {
  const int lane = threadIdx.x & 31, i = lane >> 3, k = lane & 7;
  const int m = m0 + (i & 1) * 8, kk = k0 + (i >> 1) * 8;
  if constexpr (L == Lay::Row)
    ldmatrix_x4<false>(a, s + (m + k) * ld + kk);
  else
    ldmatrix_x4<true>(a, s + (kk + k) * ld + m);
}
// The B fragments of two 8-column tiles, columns n0..n0+15, rows k0..k0+15: b[0], b[1]
// of the first tile, b[2], b[3] of the second (matrix i = rows k0 + 8 (i & 1), columns
// n0 + 8 (i >> 1)). Row (B(k, n) at s[k*ld + n]) is loaded transposed; Col stores B^T.
template <Lay L>
__device__ __forceinline__ void load_b2(uint32_t (&b)[4], const bf16* s, int ld, int k0, int n0) {
  const int lane = threadIdx.x & 31, i = lane >> 3, k = lane & 7;
  const int kk = k0 + (i & 1) * 8, n = n0 + (i >> 1) * 8;
  if constexpr (L == Lay::Row)
    ldmatrix_x4<true>(b, s + (kk + k) * ld + n);
  else
    ldmatrix_x4<false>(b, s + (n + k) * ld + kk);
}

// acc (16 x 8 NT, C layout) += A (rows m0..m0+15, K columns) * B (K rows, columns
// n0..n0+8 NT-1), both operands in shared memory. K is a multiple of 16.
template <Lay LA, Lay LB, int NT, int K, typename E>
__device__ __forceinline__ void warp_mm(float (&acc)[NT][4], const E* A, int lda, int m0,
                                        const E* B, int ldb, int n0) {
  if constexpr (std::is_same_v<E, float>) {
    // Scalar float32, each lane computing exactly the elements it owns in the C layout.
    const int lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    for (int k = 0; k < K; k++) {
      const float a0 = elem<LA>(A, lda, m0 + g, k), a1 = elem<LA>(A, lda, m0 + g + 8, k);
#pragma unroll
      for (int j = 0; j < NT; j++) {
        const int n = n0 + 8 * j + 2 * t;
        const float b0 = elem<LB>(B, ldb, k, n), b1 = elem<LB>(B, ldb, k, n + 1);
        acc[j][0] = fmaf(a0, b0, acc[j][0]);
        acc[j][1] = fmaf(a0, b1, acc[j][1]);
        acc[j][2] = fmaf(a1, b0, acc[j][2]);
        acc[j][3] = fmaf(a1, b1, acc[j][3]);
      }
    }
  } else {
    static_assert(NT % 2 == 0, "B fragments are loaded two 8-column tiles at a time");
#pragma unroll
    for (int k0 = 0; k0 < K; k0 += 16) {
      uint32_t a[4];
      load_a<LA>(a, A, lda, m0, k0);
#pragma unroll
      for (int j = 0; j < NT; j += 2) {
        uint32_t b[4];
        load_b2<LB>(b, B, ldb, k0, n0 + 8 * j);
        mma_bf16(acc[j], a, {b[0], b[1]});
        mma_bf16(acc[j + 1], a, {b[2], b[3]});
      }
    }
  }
}

// acc (16 x 8 NT) += P (16 x 8 KT, held in registers in the C layout) * B (8 KT rows, in
// shared memory). BF16: the C layout of two adjacent 8-column tiles is exactly the A
// fragment of one 16-deep step (rows g / g+8, columns 2t.. and 2t+8..), so P is only
// rounded and packed. FP32: P goes through the warp's scratch (16 x (8 KT + 4) floats).
template <Lay LB, int NT, int KT, typename E>
__device__ __forceinline__ void warp_mm_reg(float (&acc)[NT][4], const float (&p)[KT][4],
                                            float* scratch, const E* B, int ldb, int n0) {
  if constexpr (std::is_same_v<E, float>) {
    const int lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    constexpr int ld = 8 * KT + 4;
    __syncwarp();  // the previous product has finished reading the scratch
#pragma unroll
    for (int j = 0; j < KT; j++)
#pragma unroll
      for (int e = 0; e < 4; e++) scratch[(g + (e >> 1) * 8) * ld + 8 * j + 2 * t + (e & 1)] = p[j][e];
    __syncwarp();
    warp_mm<Lay::Row, LB, NT, 8 * KT>(acc, scratch, ld, 0, B, ldb, n0);
  } else {
    (void)scratch;
    static_assert(KT % 2 == 0, "P must cover whole 16-deep steps");
    static_assert(NT % 2 == 0, "B fragments are loaded two 8-column tiles at a time");
#pragma unroll
    for (int kk = 0; kk < KT / 2; kk++) {
      const uint32_t a[4] = {pack_f32(p[2 * kk][0], p[2 * kk][1]), pack_f32(p[2 * kk][2], p[2 * kk][3]),
                             pack_f32(p[2 * kk + 1][0], p[2 * kk + 1][1]),
                             pack_f32(p[2 * kk + 1][2], p[2 * kk + 1][3])};
#pragma unroll
      for (int j = 0; j < NT; j += 2) {
        uint32_t b[4];
        load_b2<LB>(b, B, ldb, 16 * kk, n0 + 8 * j);
        mma_bf16(acc[j], a, {b[0], b[1]});
        mma_bf16(acc[j + 1], a, {b[2], b[3]});
      }
    }
  }
}

// Block-wide copy of R rows x hd columns (row stride `stride` floats in global memory,
// rows r0..r0+R-1) into a shared (R, D) tile with row stride LD, converted to E; rows at
// or past T and columns at or past hd are zero, so padded keys, queries and head columns
// contribute nothing to any product.
//
// In two steps, load() into registers and store() into shared memory, so that a thread
// has all its loads of one or two tiles in flight at once. A loop that loads and stores
// element by element runs one global-memory latency after another: the compiler cannot
// move a load above the previous store (a shared and a global pointer it cannot tell
// apart), and that made the first version of these kernels 10 times slower than their
// arithmetic (1 ms per gpt2 layer forward on an H200, measured in the CUPTI profile).
template <typename E, int D>
struct Staged {
  static constexpr int kThreads = Tile<E>::W * 32;
  static constexpr int kGroups = Tile<E>::R * D / 4;  // 4 consecutive columns per group
  static constexpr int kAll = (kGroups + kThreads - 1) / kThreads;  // groups per thread
  // At most 8 groups (32 registers) in flight per call, 4 at D = 128: more makes the
  // backward kernel's accumulators spill. Part p covers groups [p kPer, (p + 1) kPer).
  static constexpr int kMax = D >= 128 ? 4 : 8;
  static constexpr int kPer = kAll < kMax ? kAll : kMax;
  static constexpr int kParts = (kAll + kPer - 1) / kPer;
  float4 v[kPer];

  __device__ __forceinline__ void load(int part, const float* src, int64_t stride, int r0, int T, int hd) {
    // 16-byte loads where every group is aligned (hd and the row stride multiples of 4).
    const bool vec = hd % 4 == 0 && stride % 4 == 0 && reinterpret_cast<uintptr_t>(src) % 16 == 0;
#pragma unroll
    for (int i = 0; i < kPer; i++) {
      const int idx = threadIdx.x + (part * kPer + i) * kThreads, r = idx / (D / 4), c = idx % (D / 4) * 4;
      float4 x = make_float4(0.f, 0.f, 0.f, 0.f);
      if (idx < kGroups && r0 + r < T && c < hd) {
        const float* p = src + static_cast<int64_t>(r0 + r) * stride + c;
        if (vec) {
          x = *reinterpret_cast<const float4*>(p);
        } else {
          x.x = p[0];
          if (c + 1 < hd) x.y = p[1];
          if (c + 2 < hd) x.z = p[2];
          if (c + 3 < hd) x.w = p[3];
        }
      }
      v[i] = x;
    }
  }
  template <int LD>
  __device__ __forceinline__ void store(int part, E* dst) const {
#pragma unroll
    for (int i = 0; i < kPer; i++) {
      const int idx = threadIdx.x + (part * kPer + i) * kThreads, r = idx / (D / 4), c = idx % (D / 4) * 4;
      if (idx >= kGroups) continue;
      if constexpr (Tile<E>::kBF16) {  // 8-byte store: LD and c keep it aligned
        const uint2 u = {pack_f32(v[i].x, v[i].y), pack_f32(v[i].z, v[i].w)};
        *reinterpret_cast<uint2*>(dst + r * LD + c) = u;
      } else {
        *reinterpret_cast<float4*>(dst + r * LD + c) = v[i];
      }
    }
  }
};

template <typename E, int D, int LD>
__device__ __forceinline__ void stage(E* dst, const float* src, int64_t stride, int r0, int T, int hd) {
  Staged<E, D> a;
#pragma unroll
  for (int part = 0; part < Staged<E, D>::kParts; part++) {
    a.load(part, src, stride, r0, T, hd);
    a.template store<LD>(part, dst);
  }
}
// Two tiles with the loads of both in flight where each is one part.
template <typename E, int D, int LD>
__device__ __forceinline__ void stage2(E* dst1, const float* src1, int64_t stride1, E* dst2,
                                       const float* src2, int64_t stride2, int r0, int T, int hd) {
  if constexpr (Staged<E, D>::kParts == 1) {
    Staged<E, D> a, b;
    a.load(0, src1, stride1, r0, T, hd);
    b.load(0, src2, stride2, r0, T, hd);
    a.template store<LD>(0, dst1);
    b.template store<LD>(0, dst2);
  } else {
    stage<E, D, LD>(dst1, src1, stride1, r0, T, hd);
    stage<E, D, LD>(dst2, src2, stride2, r0, T, hd);
  }
}

// Blocks per SM the register allocation must allow (__launch_bounds__): without a hint the
// bf16 kernels at D <= 64 took 155 (forward) and 241 (backward) registers a thread, 3 and
// 2 blocks of 4 warps per SM; these kernels hide memory and tensor-core latency with
// other warps (no software pipeline), so 4 and 3 blocks are asked for (128 and 168
// registers, no spills but 4 bytes in backward). fp32 and D = 128 keep the default.
template <typename E, int D>
constexpr int forward_min_blocks() { return Tile<E>::kBF16 && D <= 64 ? 4 : 1; }
template <typename E, int D>
constexpr int backward_min_blocks() { return Tile<E>::kBF16 && D <= 64 ? 3 : 1; }

template <typename E, int D>
constexpr size_t forward_smem() {
  constexpr int R = Tile<E>::R, LD = D + Tile<E>::kPad;
  return 3 * sizeof(E) * R * LD + (Tile<E>::kBF16 ? 0 : sizeof(float) * Tile<E>::W * 16 * (R + 4));
}

// grid (ceil(T / R), H, B), Tile<E>::W warps. Writes out rows (b, t < T) of head h and
// lse (b, h, t).
template <typename E, int D>
__global__ void __launch_bounds__(Tile<E>::W * 32, forward_min_blocks<E, D>())
    flash_forward_kernel(float* out, uint16_t* out16, float* lse, const float* qkv, int T, int H,
                         int KVH, int hd, float scale) {
  constexpr int R = Tile<E>::R, LD = D + Tile<E>::kPad, NTK = R / 8, NTD = D / 8;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  E* Qs = reinterpret_cast<E*>(smem_raw);  // (R, D) this block's queries, row stride LD
  E* Ks = Qs + R * LD;                     // (R, D) keys of the current key tile
  E* Vs = Ks + R * LD;                     // (R, D) values of the current key tile
  float* scratch = reinterpret_cast<float*>(Vs + R * LD);  // FP32 only: (W, 16, R + 4)
  const int warp = threadIdx.x / 32, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
  // Later query tiles visit more key tiles: launch them first so the tail is short.
  const int qt = gridDim.x - 1 - blockIdx.x, q0 = qt * R;
  const int h = blockIdx.y, b = blockIdx.z, kvh = h / (H / KVH);
  const int Q = H * hd, QKV = (H + 2 * KVH) * hd;
  const float* seq = qkv + static_cast<int64_t>(b) * T * QKV;  // (T, QKV) of sequence b
  stage<E, D, LD>(Qs, seq + h * hd, QKV, q0, T, hd);

  const int row0 = q0 + warp * 16 + g;  // this lane's query rows: row0 and row0 + 8
  float m_run[2] = {-INFINITY, -INFINITY};  // running row max of the scaled scores
  float l_run[2] = {0.f, 0.f};  // running sum of exp(s - m_run), this lane's columns only
  float o[NTD][4];              // (16, D) output accumulator of the warp, C layout
#pragma unroll
  for (int j = 0; j < NTD; j++) o[j][0] = o[j][1] = o[j][2] = o[j][3] = 0.f;

  for (int kt = 0; kt <= qt; kt++) {  // key tiles past the diagonal are fully masked: skipped
    const int k0 = kt * R;
    __syncthreads();  // every warp is done with the previous K, V tile
    stage2<E, D, LD>(Ks, seq + Q + kvh * hd, QKV, Vs, seq + Q + KVH * hd + kvh * hd, QKV, k0, T, hd);
    __syncthreads();
    // s (16 queries, R keys) = Q K^T: B(k = d, n = key) = Ks[key][d], column-major.
    float s[NTK][4];
#pragma unroll
    for (int j = 0; j < NTK; j++) s[j][0] = s[j][1] = s[j][2] = s[j][3] = 0.f;
    warp_mm<Lay::Row, Lay::Col, NTK, D>(s, Qs, LD, warp * 16, Ks, LD, 0);
    float mx[2] = {-INFINITY, -INFINITY};
#pragma unroll
    for (int j = 0; j < NTK; j++)
#pragma unroll
      for (int e = 0; e < 4; e++) {
        const int row = row0 + (e >> 1) * 8, col = k0 + 8 * j + 2 * t + (e & 1);
        const float v = (col <= row && col < T) ? s[j][e] * scale : -INFINITY;
        s[j][e] = v;
        mx[e >> 1] = fmaxf(mx[e >> 1], v);
      }
    float base[2], alpha[2];
#pragma unroll
    for (int i = 0; i < 2; i++) {
      // The 4 lanes of a quad (same g) hold the same two rows.
      mx[i] = fmaxf(mx[i], __shfl_xor_sync(0xffffffffu, mx[i], 1));
      mx[i] = fmaxf(mx[i], __shfl_xor_sync(0xffffffffu, mx[i], 2));
      const float m_new = fmaxf(m_run[i], mx[i]);
      // Key 0 is in tile 0 and never masked, so m_new is finite from the first tile on;
      // the guard only keeps exp(-inf - (-inf)) out of reach.
      base[i] = m_new == -INFINITY ? 0.f : m_new;
      alpha[i] = expf(m_run[i] - base[i]);  // 0 on the first tile (m_run = -inf)
      m_run[i] = m_new;
    }
    float rs[2] = {0.f, 0.f};
#pragma unroll
    for (int j = 0; j < NTK; j++)
#pragma unroll
      for (int e = 0; e < 4; e++) {
        const float p = expf(s[j][e] - base[e >> 1]);  // masked: exp(-inf) = 0
        s[j][e] = p;
        rs[e >> 1] += p;
      }
#pragma unroll
    for (int i = 0; i < 2; i++) l_run[i] = l_run[i] * alpha[i] + rs[i];
#pragma unroll
    for (int j = 0; j < NTD; j++) {
      o[j][0] *= alpha[0], o[j][1] *= alpha[0];
      o[j][2] *= alpha[1], o[j][3] *= alpha[1];
    }
    // o (16, D) += p (16, R) V (R, D): B(k = key, n = d) = Vs[key][d], row-major.
    warp_mm_reg<Lay::Row, NTD, NTK>(o, s, scratch + warp * 16 * (R + 4), Vs, LD, 0);
  }
#pragma unroll
  for (int i = 0; i < 2; i++) {
    l_run[i] += __shfl_xor_sync(0xffffffffu, l_run[i], 1);
    l_run[i] += __shfl_xor_sync(0xffffffffu, l_run[i], 2);
  }
  // l >= 1 (the max element contributes exp(0)), so the division is safe.
  const float inv[2] = {1.0f / l_run[0], 1.0f / l_run[1]};
#pragma unroll
  for (int j = 0; j < NTD; j++)
#pragma unroll
    for (int e = 0; e < 4; e++) {
      const int row = row0 + (e >> 1) * 8, d = 8 * j + 2 * t + (e & 1);
      if (row < T && d < hd) {
        const int64_t at = (static_cast<int64_t>(b) * T + row) * Q + h * hd + d;
        const float v = o[j][e] * inv[e >> 1];
        out[at] = v;
        if (out16) store(out16 + at, v);
      }
    }
  if (t == 0)
#pragma unroll
    for (int i = 0; i < 2; i++) {
      const int row = row0 + i * 8;
      if (row < T) lse[(static_cast<int64_t>(b) * H + h) * T + row] = m_run[i] + logf(l_run[i]);
    }
}

// delta (b, h, t) = sum_d dout * out over the head's hd columns; one warp per (b, t, h).
// Row (b*T + t)*H + h of the (B*T*H, hd) view of out / dout. The same warp clears that
// row's dQ (the hd columns of head h in row b*T + t of dqkv, (B*T, QKV)), which the
// backward kernel then accumulates atomically: no separate zeroing pass over dqkv.
__global__ void flash_delta_kernel(float* delta, float* dqkv, const float* out, const float* dout,
                                   int B, int T, int H, int QKV, int hd) {
  const int64_t row = blockIdx.x * 8LL + threadIdx.x / 32;
  const int lane = threadIdx.x & 31;
  if (row >= static_cast<int64_t>(B) * T * H) return;
  const float* o = out + row * hd;
  const float* d = dout + row * hd;
  const int h = static_cast<int>(row % H);
  const int64_t bt = row / H;  // b*T + t
  float* dq = dqkv + bt * QKV + h * hd;
  float s = 0.f;
  for (int i = lane; i < hd; i += 32) {
    s = fmaf(o[i], d[i], s);
    dq[i] = 0.f;
  }
  s = warp_sum(s);
  if (lane == 0) {
    const int64_t b = bt / T, tt = bt % T;
    delta[(b * H + h) * T + tt] = s;
  }
}

template <typename E, int D>
constexpr size_t backward_smem() {
  constexpr int R = Tile<E>::R, LD = D + Tile<E>::kPad, LDS = R + Tile<E>::kPad;
  return 4 * sizeof(E) * R * LD + sizeof(E) * R * LDS + 2 * sizeof(float) * R +
         (Tile<E>::kBF16 ? 0 : sizeof(float) * Tile<E>::W * 16 * (R + 4));
}

// grid (ceil(T / R), KVH, B), Tile<E>::W warps. Adds dQ into dqkv atomically (cleared by
// flash_delta_kernel first) and writes dK, dV.
template <typename E, int D>
__global__ void __launch_bounds__(Tile<E>::W * 32, backward_min_blocks<E, D>())
    flash_backward_kernel(float* dqkv, const float* dout, const float* qkv, const float* lse,
                          const float* delta, int T, int H, int KVH, int hd, float scale) {
  constexpr int R = Tile<E>::R, LD = D + Tile<E>::kPad, LDS = R + Tile<E>::kPad;
  constexpr int NTK = R / 8, NTD = D / 8;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  E* Ks = reinterpret_cast<E*>(smem_raw);  // (R, D) this block's keys, row stride LD
  E* Vs = Ks + R * LD;                     // (R, D) this block's values
  E* Qs = Vs + R * LD;                     // (R, D) queries of the current query tile
  E* dOs = Qs + R * LD;                    // (R, D) their output gradients
  E* dSs = dOs + R * LD;                   // (R keys, R queries) dS^T, row stride LDS
  float* lse_s = reinterpret_cast<float*>(dSs + R * LDS);  // (R) lse of the query tile
  float* dl_s = lse_s + R;                                 // (R) delta of the query tile
  float* scratch = dl_s + R;                               // FP32 only: (W, 16, R + 4)
  const int warp = threadIdx.x / 32, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
  const int kt = blockIdx.x, k0 = kt * R, kvh = blockIdx.y, b = blockIdx.z;
  const int Q = H * hd, QKV = (H + 2 * KVH) * hd, grp = H / KVH, nqt = gridDim.x;
  const float* seq = qkv + static_cast<int64_t>(b) * T * QKV;  // (T, QKV) of sequence b
  const float* dseq = dout + static_cast<int64_t>(b) * T * Q;  // (T, Q)
  float* dseq_qkv = dqkv + static_cast<int64_t>(b) * T * QKV;  // (T, QKV)
  stage2<E, D, LD>(Ks, seq + Q + kvh * hd, QKV, Vs, seq + Q + KVH * hd + kvh * hd, QKV, k0, T, hd);
  float* scr = scratch + warp * 16 * (R + 4);

  const int key0 = k0 + warp * 16 + g;  // this lane's key rows: key0 and key0 + 8
  float dk[NTD][4], dv[NTD][4];         // (16 keys, D) of the warp, summed over the group
#pragma unroll
  for (int j = 0; j < NTD; j++)
#pragma unroll
    for (int e = 0; e < 4; e++) dk[j][e] = dv[j][e] = 0.f;

  for (int hi = 0; hi < grp; hi++) {
    const int h = kvh * grp + hi;
    const float* lse_h = lse + (static_cast<int64_t>(b) * H + h) * T;
    const float* dl_h = delta + (static_cast<int64_t>(b) * H + h) * T;
    for (int qt = kt; qt < nqt; qt++) {  // query tiles before kt see none of these keys
      const int q0 = qt * R;
      __syncthreads();  // previous Qs, dOs, dSs fully read
      stage2<E, D, LD>(Qs, seq + h * hd, QKV, dOs, dseq + h * hd, Q, q0, T, hd);
      for (int i = threadIdx.x; i < R; i += blockDim.x) {
        lse_s[i] = q0 + i < T ? lse_h[q0 + i] : 0.f;
        dl_s[i] = q0 + i < T ? dl_h[q0 + i] : 0.f;
      }
      __syncthreads();
      // pt (16 keys, R queries) = K Q^T: B(k = d, n = query) = Qs[query][d], column-major.
      float pt[NTK][4];
#pragma unroll
      for (int j = 0; j < NTK; j++) pt[j][0] = pt[j][1] = pt[j][2] = pt[j][3] = 0.f;
      warp_mm<Lay::Row, Lay::Col, NTK, D>(pt, Ks, LD, warp * 16, Qs, LD, 0);
      // P^T = exp(scale S^T - lse) where query >= key (both inside T), else 0.
#pragma unroll
      for (int j = 0; j < NTK; j++)
#pragma unroll
        for (int e = 0; e < 4; e++) {
          const int key = key0 + (e >> 1) * 8, qc = 8 * j + 2 * t + (e & 1), query = q0 + qc;
          pt[j][e] = (query >= key && query < T && key < T) ? expf(pt[j][e] * scale - lse_s[qc]) : 0.f;
        }
      // dv (16 keys, D) += P^T (16, R) dO (R, D): B(k = query, n = d) = dOs[query][d], row-major.
      warp_mm_reg<Lay::Row, NTD, NTK>(dv, pt, scr, dOs, LD, 0);
      // ds (16 keys, R queries) = V dO^T, then dS^T = scale P^T (dP^T - delta).
      float ds[NTK][4];
#pragma unroll
      for (int j = 0; j < NTK; j++) ds[j][0] = ds[j][1] = ds[j][2] = ds[j][3] = 0.f;
      warp_mm<Lay::Row, Lay::Col, NTK, D>(ds, Vs, LD, warp * 16, dOs, LD, 0);
#pragma unroll
      for (int j = 0; j < NTK; j++)
#pragma unroll
        for (int e = 0; e < 4; e++) {
          const int qc = 8 * j + 2 * t + (e & 1);
          ds[j][e] = scale * pt[j][e] * (ds[j][e] - dl_s[qc]);
        }
      // dk (16 keys, D) += dS^T (16, R) Q (R, D): B(k = query, n = d) = Qs[query][d], row-major.
      warp_mm_reg<Lay::Row, NTD, NTK>(dk, ds, scr, Qs, LD, 0);
      // dS^T to shared memory for dQ, which needs all warps' keys for each query row.
#pragma unroll
      for (int j = 0; j < NTK; j++)
#pragma unroll
        for (int e = 0; e < 4; e++)
          dSs[(warp * 16 + g + (e >> 1) * 8) * LDS + 8 * j + 2 * t + (e & 1)] = to_e<E>(ds[j][e]);
      __syncthreads();
      // dq (16 queries of this warp, D) = dS (16, R keys) K (R, D):
      // A(m = query, k = key) = dSs[key][query] (column-major), B(k = key, n = d) = Ks[key][d].
      float dq[NTD][4];
#pragma unroll
      for (int j = 0; j < NTD; j++) dq[j][0] = dq[j][1] = dq[j][2] = dq[j][3] = 0.f;
      warp_mm<Lay::Col, Lay::Row, NTD, R>(dq, dSs, LDS, warp * 16, Ks, LD, 0);
      // Every key tile at or before the query's tile adds here: atomics (float32).
#pragma unroll
      for (int j = 0; j < NTD; j++) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
        // Hopper adds a lane's two adjacent columns in one atomic (half the atomics); the
        // pair is 8-byte aligned when hd (so QKV) is even.
        if (hd % 2 == 0) {
#pragma unroll
          for (int i = 0; i < 2; i++) {
            const int query = q0 + warp * 16 + g + i * 8, d = 8 * j + 2 * t;
            if (query < T && d < hd)
              atomicAdd(reinterpret_cast<float2*>(dseq_qkv + static_cast<int64_t>(query) * QKV + h * hd + d),
                        make_float2(dq[j][2 * i], dq[j][2 * i + 1]));
          }
          continue;
        }
#endif
#pragma unroll
        for (int e = 0; e < 4; e++) {
          const int query = q0 + warp * 16 + g + (e >> 1) * 8, d = 8 * j + 2 * t + (e & 1);
          if (query < T && d < hd) atomicAdd(dseq_qkv + static_cast<int64_t>(query) * QKV + h * hd + d, dq[j][e]);
        }
      }
    }
  }
  // This block is the only writer of these dK, dV elements: they are written, not added
  // to, so dqkv needs no zeroing first.
#pragma unroll
  for (int j = 0; j < NTD; j++)
#pragma unroll
    for (int e = 0; e < 4; e++) {
      const int key = key0 + (e >> 1) * 8, d = 8 * j + 2 * t + (e & 1);
      if (key < T && d < hd) {
        float* r = dseq_qkv + static_cast<int64_t>(key) * QKV;
        r[Q + kvh * hd + d] = dk[j][e];
        r[Q + KVH * hd + kvh * hd + d] = dv[j][e];
      }
    }
}

template <typename E, int D>
void launch_forward(float* out, uint16_t* out16, float* lse, const float* qkv, int B, int T, int H,
                    int KVH, int hd, cudaStream_t stream) {
  constexpr size_t smem = forward_smem<E, D>();
  auto kernel = flash_forward_kernel<E, D>;
  // Above 48 KiB of dynamic shared memory a kernel must opt in (cheap; set per launch).
  SCORE_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                        static_cast<int>(smem)));
  const dim3 grid(ceil_div(T, Tile<E>::R), H, B);
  kernel<<<grid, Tile<E>::W * 32, smem, stream>>>(out, out16, lse, qkv, T, H, KVH, hd,
                                                   1.0f / std::sqrt(static_cast<float>(hd)));
  SCORE_CUDA_LAUNCH_CHECK();
}

template <typename E, int D>
void launch_backward(float* dqkv, const float* dout, const float* qkv, const float* lse,
                     const float* delta, int B, int T, int H, int KVH, int hd, cudaStream_t stream) {
  constexpr size_t smem = backward_smem<E, D>();
  auto kernel = flash_backward_kernel<E, D>;
  SCORE_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                        static_cast<int>(smem)));
  const dim3 grid(ceil_div(T, Tile<E>::R), KVH, B);
  kernel<<<grid, Tile<E>::W * 32, smem, stream>>>(dqkv, dout, qkv, lse, delta, T, H, KVH, hd,
                                                   1.0f / std::sqrt(static_cast<float>(hd)));
  SCORE_CUDA_LAUNCH_CHECK();
}

// The padded head size D for hd (flash_attention_supported: hd <= 128).
template <typename E>
void forward_for(float* out, uint16_t* out16, float* lse, const float* qkv, int B, int T, int H,
                 int KVH, int hd, cudaStream_t stream) {
  if (hd <= 32)
    launch_forward<E, 32>(out, out16, lse, qkv, B, T, H, KVH, hd, stream);
  else if (hd <= 64)
    launch_forward<E, 64>(out, out16, lse, qkv, B, T, H, KVH, hd, stream);
  else
    launch_forward<E, 128>(out, out16, lse, qkv, B, T, H, KVH, hd, stream);
}
template <typename E>
void backward_for(float* dqkv, const float* dout, const float* qkv, const float* lse,
                  const float* delta, int B, int T, int H, int KVH, int hd, cudaStream_t stream) {
  if (hd <= 32)
    launch_backward<E, 32>(dqkv, dout, qkv, lse, delta, B, T, H, KVH, hd, stream);
  else if (hd <= 64)
    launch_backward<E, 64>(dqkv, dout, qkv, lse, delta, B, T, H, KVH, hd, stream);
  else
    launch_backward<E, 128>(dqkv, dout, qkv, lse, delta, B, T, H, KVH, hd, stream);
}

void check_shape(int B, int T, int H, int KVH, int hd) {
  SCORE_CHECK(flash_attention_supported(hd), Unsupported,
              "flash attention supports head sizes 1 to 128, not " + std::to_string(hd));
  SCORE_CHECK(B >= 0 && T >= 0 && H > 0 && KVH > 0 && H % KVH == 0 && hd > 0, InvalidArgument,
              "flash attention: bad shape (B " + std::to_string(B) + ", T " + std::to_string(T) +
                  ", H " + std::to_string(H) + ", KVH " + std::to_string(KVH) + ", hd " +
                  std::to_string(hd) + ")");
}

}  // namespace

bool flash_attention_supported(int hd) { return hd >= 1 && hd <= 128; }

void flash_attention_forward(float* out, float* lse, const float* qkv, int B, int T, int H, int KVH,
                             int hd, MatmulPrecision prec, cudaStream_t stream, uint16_t* out16) {
  check_shape(B, T, H, KVH, hd);
  if (B == 0 || T == 0) return;
  if (prec == MatmulPrecision::BF16)
    forward_for<bf16>(out, out16, lse, qkv, B, T, H, KVH, hd, stream);
  else
    forward_for<float>(out, out16, lse, qkv, B, T, H, KVH, hd, stream);
}

void flash_attention_backward(float* dqkv, float* delta, const float* dout, const float* qkv,
                              const float* out, const float* lse, int B, int T, int H, int KVH,
                              int hd, MatmulPrecision prec, cudaStream_t stream) {
  check_shape(B, T, H, KVH, hd);
  if (B == 0 || T == 0) return;
  const int64_t rows = static_cast<int64_t>(B) * T * H;
  flash_delta_kernel<<<ceil_div(rows, 8), 256, 0, stream>>>(delta, dqkv, out, dout, B, T, H,
                                                            (H + 2 * KVH) * hd, hd);
  SCORE_CUDA_LAUNCH_CHECK();
  if (prec == MatmulPrecision::BF16)
    backward_for<bf16>(dqkv, dout, qkv, lse, delta, B, T, H, KVH, hd, stream);
  else
    backward_for<float>(dqkv, dout, qkv, lse, delta, B, T, H, KVH, hd, stream);
}

}  // namespace score::cuda
