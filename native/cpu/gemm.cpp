// Packed, cache-blocked single-precision GEMM (see gemm.h for the contract).
//
// Structure (the classic Goto/BLIS loop nest):
//   for jc over N in NC columns:
//     for pc over K in KC:
//       pack B (kc, nc) into NR-wide slivers, k-major      <- shared by all threads
//       each thread, over its own rows (or columns, when M is small):
//         for ic over its rows in MC:  pack A (mc, kc) into MR-tall slivers, k-major
//           for each NR sliver of B, for each MR sliver of A:  micro-kernel
// The micro-kernel keeps an MR x NR tile of C in registers and performs kc
// rank-1 updates: per k it loads one row of the B sliver (NR floats) and
// broadcasts MR values of A. The B sliver (kc * NR * 4 bytes) stays in L1, the
// packed A block in L2. Packing absorbs any strides / transposes of A and B and
// zero-pads partial slivers, so the micro-kernel only ever sees full tiles;
// partial tiles of C go through a small local buffer.
//
// Kernels are chosen at run time (no -march=native in the build): AVX-512
// (14 x 32 tile: 28 zmm accumulators), AVX2+FMA (6 x 16: 12 ymm), portable C++.
//
// Small M with B stored transposed (the decode shapes of a linear layer's
// forward, M = rows <= kGemmSmallM): the product is memory
// bound on B, and packing B would read it twice, so an AVX-512 dot-product
// kernel reads A and B in place instead.
#include "cpu/gemm.h"

#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>

#include "cpu/parallel.h"
#include "cpu/x86.h"

namespace score::cpu {
namespace {

// Micro-kernel: c (MR, NR; row stride ldc) = [c +] [bias (NR) +] a_packed (kc, MR) x b_packed (kc, NR).
using MicroKernel = void (*)(int kc, const float* a, const float* b, float* c, ptrdiff_t ldc,
                             const float* bias, bool load_c);

// Packers for the transposing cases (optional; the portable loops below are the fallback):
// A sliver with rows contiguous in k:    dst[k * MR + i] = A[i * rs + k]  (i < mr, rest 0)
// B sliver with columns contiguous in k: dst[k * NR + j] = B[j * cs + k]  (j < nr, rest 0)
using PackT = void (*)(int kc, int n, const float* src, ptrdiff_t stride, float* dst);

struct KernelSet {
  int MR, NR;  // register tile
  int MC, KC, NC;  // cache blocks: A block (MC, KC) in L2, B sliver (KC, NR) in L1
  MicroKernel ukr;
  PackT pack_a_t, pack_b_t;
};

// ---- portable micro-kernel (any CPU; the compiler vectorises what it can) ----
constexpr int kGenMR = 4, kGenNR = 16;
void ukr_generic(int kc, const float* a, const float* b, float* c, ptrdiff_t ldc,
                 const float* bias, bool load_c) {
  float acc[kGenMR][kGenNR];
  for (int i = 0; i < kGenMR; ++i)
    for (int j = 0; j < kGenNR; ++j)
      acc[i][j] = (load_c ? c[i * ldc + j] : 0.0f) + (bias ? bias[j] : 0.0f);
  for (int k = 0; k < kc; ++k) {
    for (int i = 0; i < kGenMR; ++i) {
      const float ai = a[i];
      for (int j = 0; j < kGenNR; ++j) acc[i][j] += ai * b[j];
    }
    a += kGenMR;
    b += kGenNR;
  }
  for (int i = 0; i < kGenMR; ++i)
    for (int j = 0; j < kGenNR; ++j) c[i * ldc + j] = acc[i][j];
}

#ifdef SCORE_X86
// ---- AVX-512: MR x 32, two zmm per row of the tile ----
constexpr int k512MR = 14, k512NR = 32;
__attribute__((target("avx512f"))) void ukr_avx512(int kc, const float* a, const float* b,
                                                   float* c, ptrdiff_t ldc, const float* bias,
                                                   bool load_c) {
  constexpr int MR = k512MR;
  __m512 c0[MR], c1[MR];
  const __m512 bias0 = bias ? _mm512_loadu_ps(bias) : _mm512_setzero_ps();
  const __m512 bias1 = bias ? _mm512_loadu_ps(bias + 16) : _mm512_setzero_ps();
#pragma GCC unroll 14
  for (int i = 0; i < MR; ++i) {
    c0[i] = load_c ? _mm512_add_ps(_mm512_loadu_ps(c + i * ldc), bias0) : bias0;
    c1[i] = load_c ? _mm512_add_ps(_mm512_loadu_ps(c + i * ldc + 16), bias1) : bias1;
  }
#pragma GCC unroll 2
  for (int k = 0; k < kc; ++k) {
    const __m512 b0 = _mm512_load_ps(b), b1 = _mm512_load_ps(b + 16);
#pragma GCC unroll 14
    for (int i = 0; i < MR; ++i) {
      const __m512 ai = _mm512_set1_ps(a[i]);
      c0[i] = _mm512_fmadd_ps(ai, b0, c0[i]);
      c1[i] = _mm512_fmadd_ps(ai, b1, c1[i]);
    }
    a += MR;
    b += k512NR;
  }
#pragma GCC unroll 14
  for (int i = 0; i < MR; ++i) {
    _mm512_storeu_ps(c + i * ldc, c0[i]);
    _mm512_storeu_ps(c + i * ldc + 16, c1[i]);
  }
}

// ---- AVX2 + FMA: 6 x 16, two ymm per row of the tile ----
constexpr int k256MR = 6, k256NR = 16;
__attribute__((target("avx2,fma"))) void ukr_avx2(int kc, const float* a, const float* b,
                                                  float* c, ptrdiff_t ldc, const float* bias,
                                                  bool load_c) {
  constexpr int MR = k256MR;
  __m256 c0[MR], c1[MR];
  const __m256 bias0 = bias ? _mm256_loadu_ps(bias) : _mm256_setzero_ps();
  const __m256 bias1 = bias ? _mm256_loadu_ps(bias + 8) : _mm256_setzero_ps();
#pragma GCC unroll 6
  for (int i = 0; i < MR; ++i) {
    c0[i] = load_c ? _mm256_add_ps(_mm256_loadu_ps(c + i * ldc), bias0) : bias0;
    c1[i] = load_c ? _mm256_add_ps(_mm256_loadu_ps(c + i * ldc + 8), bias1) : bias1;
  }
#pragma GCC unroll 4
  for (int k = 0; k < kc; ++k) {
    const __m256 b0 = _mm256_load_ps(b), b1 = _mm256_load_ps(b + 8);
#pragma GCC unroll 6
    for (int i = 0; i < MR; ++i) {
      const __m256 ai = _mm256_broadcast_ss(a + i);
      c0[i] = _mm256_fmadd_ps(ai, b0, c0[i]);
      c1[i] = _mm256_fmadd_ps(ai, b1, c1[i]);
    }
    a += MR;
    b += k256NR;
  }
#pragma GCC unroll 6
  for (int i = 0; i < MR; ++i) {
    _mm256_storeu_ps(c + i * ldc, c0[i]);
    _mm256_storeu_ps(c + i * ldc + 8, c1[i]);
  }
}

// Transposes a 16 x 16 block held as 16 rows: afterwards r[c] holds what was column c.
__attribute__((target("avx512f"))) inline void transpose16(__m512 r[16]) {
  __m512 t[16], u[16];
  // Within each 128-bit lane (4 columns), interleave row pairs: [a0 b0 a1 b1], [a2 b2 a3 b3].
#pragma GCC unroll 8
  for (int i = 0; i < 8; ++i) {
    t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  // u[4i + q], lane L: column 4L + q of rows 4i .. 4i+3.
#pragma GCC unroll 4
  for (int i = 0; i < 4; ++i) {
    u[4 * i + 0] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], 0x44);
    u[4 * i + 1] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], 0xEE);
    u[4 * i + 2] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0x44);
    u[4 * i + 3] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0xEE);
  }
  // Column 4L + q gathers lane L of u[q], u[4+q], u[8+q], u[12+q].
#pragma GCC unroll 4
  for (int q = 0; q < 4; ++q) {
    const __m512 v02 = _mm512_shuffle_f32x4(u[q], u[4 + q], 0x88);  // lanes 0, 2 of each
    const __m512 w02 = _mm512_shuffle_f32x4(u[8 + q], u[12 + q], 0x88);
    const __m512 v13 = _mm512_shuffle_f32x4(u[q], u[4 + q], 0xDD);  // lanes 1, 3 of each
    const __m512 w13 = _mm512_shuffle_f32x4(u[8 + q], u[12 + q], 0xDD);
    r[0 + q] = _mm512_shuffle_f32x4(v02, w02, 0x88);
    r[8 + q] = _mm512_shuffle_f32x4(v02, w02, 0xDD);
    r[4 + q] = _mm512_shuffle_f32x4(v13, w13, 0x88);
    r[12 + q] = _mm512_shuffle_f32x4(v13, w13, 0xDD);
  }
}

// A sliver (k512MR rows, each contiguous in k) -> dst[k * 14 + i], 16 k at a time.
__attribute__((target("avx512f"))) void pack_a_t_avx512(int kc, int mr, const float* A,
                                                        ptrdiff_t rs, float* dst) {
  for (int k0 = 0; k0 < kc; k0 += 16) {
    const int kb = std::min(16, kc - k0);
    const __mmask16 m = static_cast<__mmask16>((1u << kb) - 1);
    __m512 r[16];
#pragma GCC unroll 16
    for (int i = 0; i < 16; ++i)
      r[i] = i < mr ? _mm512_maskz_loadu_ps(m, A + i * rs + k0) : _mm512_setzero_ps();
    transpose16(r);
    for (int k = 0; k < kb; ++k)  // 14 of the 16 lanes; the next store starts where this ends
      _mm512_mask_storeu_ps(dst + (k0 + k) * k512MR, (1u << k512MR) - 1, r[k]);
  }
}

// B sliver (32 columns, each contiguous in k) -> dst[k * 32 + j], 16 x 16 blocks.
__attribute__((target("avx512f"))) void pack_b_t_avx512(int kc, int nr, const float* B,
                                                        ptrdiff_t cs, float* dst) {
  for (int k0 = 0; k0 < kc; k0 += 16) {
    const int kb = std::min(16, kc - k0);
    const __mmask16 m = static_cast<__mmask16>((1u << kb) - 1);
    for (int h = 0; h < 2; ++h) {
      __m512 r[16];
#pragma GCC unroll 16
      for (int j = 0; j < 16; ++j) {
        const int col = h * 16 + j;
        r[j] = col < nr ? _mm512_maskz_loadu_ps(m, B + col * cs + k0) : _mm512_setzero_ps();
      }
      transpose16(r);
      for (int k = 0; k < kb; ++k) _mm512_store_ps(dst + (k0 + k) * k512NR + h * 16, r[k]);
    }
  }
}

// ---- AVX-512 small-M path: C (M, N) = [C +] [bias +] A (M, K) B (K, N) with A rows and
// B columns contiguous in k (a_cs == 1, b_rs == 1), i.e. dot products of rows. ----

// Returns (sum v0, sum v1, sum v2, sum v3).
__attribute__((target("avx512f"))) inline __m128 hsum4(__m512 v0, __m512 v1, __m512 v2,
                                                      __m512 v3) {
  // Per 128-bit lane: [v0_0+v0_2, v1_0+v1_2, v0_1+v0_3, v1_1+v1_3], same for v2, v3.
  const __m512 s01 = _mm512_add_ps(_mm512_unpacklo_ps(v0, v1), _mm512_unpackhi_ps(v0, v1));
  const __m512 s23 = _mm512_add_ps(_mm512_unpacklo_ps(v2, v3), _mm512_unpackhi_ps(v2, v3));
  // Per lane: [v0, v1, v2, v3] partial sums.
  const __m512 s = _mm512_add_ps(_mm512_shuffle_ps(s01, s23, 0x44), _mm512_shuffle_ps(s01, s23, 0xEE));
  return _mm_add_ps(_mm_add_ps(_mm512_extractf32x4_ps(s, 0), _mm512_extractf32x4_ps(s, 1)),
                    _mm_add_ps(_mm512_extractf32x4_ps(s, 2), _mm512_extractf32x4_ps(s, 3)));
}

// MB rows of A (up to 4) against 4 columns of B: 4*MB accumulators along k. pf (may be
// null): 4 rows of B, ldb apart, to prefetch into L1 alongside.
template <int MB>
__attribute__((target("avx512f"))) void dot_block(int K, const float* a, ptrdiff_t lda,
                                                  const float* b, ptrdiff_t ldb, int nb,
                                                  const float* pf, float out[4][4]) {
  // (The loops over i and j are unrolled explicitly so that acc stays in registers at -O2.)
  __m512 acc[MB][4];
#pragma GCC unroll 4
  for (int i = 0; i < MB; ++i)
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j) acc[i][j] = _mm512_setzero_ps();
  // Columns past nb re-read column 0 (valid memory); their sums are discarded.
  const float* bj[4];
#pragma GCC unroll 4
  for (int j = 0; j < 4; ++j) bj[j] = b + (j < nb ? j : 0) * ldb;
  int k = 0;
  for (; k + 16 <= K; k += 16) {
    __m512 bv[4];
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j) bv[j] = _mm512_loadu_ps(bj[j] + k);
    if (pf) {
#pragma GCC unroll 4
      for (int j = 0; j < 4; ++j) _mm_prefetch(reinterpret_cast<const char*>(pf + j * ldb + k), _MM_HINT_T0);
    }
#pragma GCC unroll 4
    for (int i = 0; i < MB; ++i) {
      const __m512 av = _mm512_loadu_ps(a + i * lda + k);
#pragma GCC unroll 4
      for (int j = 0; j < 4; ++j) acc[i][j] = _mm512_fmadd_ps(av, bv[j], acc[i][j]);
    }
  }
  if (k < K) {  // tail: masked loads read nothing past K
    const __mmask16 m = static_cast<__mmask16>((1u << (K - k)) - 1);
    __m512 bv[4];
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j) bv[j] = _mm512_maskz_loadu_ps(m, bj[j] + k);
#pragma GCC unroll 4
    for (int i = 0; i < MB; ++i) {
      const __m512 av = _mm512_maskz_loadu_ps(m, a + i * lda + k);
#pragma GCC unroll 4
      for (int j = 0; j < 4; ++j) acc[i][j] = _mm512_fmadd_ps(av, bv[j], acc[i][j]);
    }
  }
#pragma GCC unroll 4
  for (int i = 0; i < MB; ++i) _mm_storeu_ps(out[i], hsum4(acc[i][0], acc[i][1], acc[i][2], acc[i][3]));
}

constexpr int kPrefetchBlocks = 2;

void small_m_avx512(int M, int N, int K, const float* A, ptrdiff_t lda, const float* B,
                    ptrdiff_t ldb, float* C, ptrdiff_t ldc, bool accumulate, const float* bias) {
  const int nblocks = (N + 3) / 4;
  // Each block of 4 columns streams 4 rows of B (4*K floats) once for all M rows of A.
  const bool par = 2.0 * M * N * K > 2e5;
  parallel_for(nblocks, par, [&](int jb) {
    const int j0 = jb * 4, nb = std::min(4, N - j0);
    const float* b = B + j0 * ldb;
    float out[4][4];
    // B streams from memory when it is a weight matrix (decode) or a KV cache: the first
    // pass over this block prefetches the block kPrefetchBlocks ahead (measured: 5-15%
    // faster attention against the KV cache, ~8% faster decode products).
    const float* pfb = j0 + 4 * kPrefetchBlocks + 4 <= N ? b + 4 * kPrefetchBlocks * ldb : nullptr;
    for (int i0 = 0; i0 < M; i0 += 4) {
      const int mb = std::min(4, M - i0);
      const float* a = A + i0 * lda;
      const float* pf = i0 == 0 ? pfb : nullptr;
      switch (mb) {
        case 4: dot_block<4>(K, a, lda, b, ldb, nb, pf, out); break;
        case 3: dot_block<3>(K, a, lda, b, ldb, nb, pf, out); break;
        case 2: dot_block<2>(K, a, lda, b, ldb, nb, pf, out); break;
        default: dot_block<1>(K, a, lda, b, ldb, nb, pf, out); break;
      }
      for (int i = 0; i < mb; ++i) {
        float* c = C + (i0 + i) * ldc + j0;
        for (int j = 0; j < nb; ++j)
          c[j] = (accumulate ? c[j] : 0.0f) + (bias ? bias[j0 + j] : 0.0f) + out[i][j];
      }
    }
  });
}
#endif  // SCORE_X86

// Block sizes: MC * KC * 4 (the packed A block) in L2; KC * NC * 4 (the packed B panel,
// shared by the threads) in L2/L3; KC * NR * 4 (the B sliver) ideally in L1 next to a
// streaming A sliver. The AVX-512 numbers were tuned on Zen 5 (48 KiB L1d, 1 MiB L2),
// where L2 streams both slivers fast enough and each K block costs a pass of loads and
// stores over C: KC = 1536 (A block 516 KiB) beat 768 by 1-6% and 384 by 3-12% on every
// model shape, interleaved in one process (bench/results/2026-11-27-cpu-session4.md).
const KernelSet kGeneric{kGenMR, kGenNR, 128, 256, 2048, ukr_generic, nullptr, nullptr};
#ifdef SCORE_X86
const KernelSet kAvx512{k512MR, k512NR, 6 * k512MR, 1536, 3072, ukr_avx512, pack_a_t_avx512,
                        pack_b_t_avx512};
const KernelSet kAvx2{k256MR, k256NR, 24 * k256MR, 256, 2048, ukr_avx2, nullptr, nullptr};
#endif

bool cpu_has(GemmIsa isa) {
  switch (isa) {
#ifdef SCORE_X86
    case GemmIsa::Avx512:
    case GemmIsa::Avx512Packed: return __builtin_cpu_supports("avx512f");
    case GemmIsa::Avx2: return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#endif
    case GemmIsa::Generic: return true;
    default: return false;
  }
}

GemmIsa resolve(GemmIsa isa) {
  if (isa != GemmIsa::Auto && cpu_has(isa)) return isa;
  if (cpu_has(GemmIsa::Avx512)) return GemmIsa::Avx512;
  if (cpu_has(GemmIsa::Avx2)) return GemmIsa::Avx2;
  return GemmIsa::Generic;
}

const KernelSet& kernels_for(GemmIsa isa) {
#ifdef SCORE_X86
  if (isa == GemmIsa::Avx512 || isa == GemmIsa::Avx512Packed) return kAvx512;
  if (isa == GemmIsa::Avx2) return kAvx2;
#endif
  (void)isa;
  return kGeneric;
}

// Up to this many rows, the dot-product path beats packing B (measured: 280 vs 180 GFLOP/s
// at M = 32, IC = 384, OC = 1536 on 2 Zen 5 cores; the packed path wins from M = 64).

bool use_small_m_path(GemmIsa isa, int M, int K, ptrdiff_t a_cs, ptrdiff_t b_rs) {
  return isa == GemmIsa::Avx512 && M <= kGemmSmallM &&
         K >= 16 && a_cs == 1 && b_rs == 1;
}

// Packs A (mc, kc) (already offset to the block) into MR-tall slivers:
// dst[(i / MR) * MR * kc + k * MR + i % MR], rows past mc zero.
void pack_a(int mc, int kc, const float* A, ptrdiff_t rs, ptrdiff_t cs, int MR, PackT fast_t,
            float* dst) {
  for (int s = 0; s < mc; s += MR) {
    const int mr = std::min(MR, mc - s);
    float* d = dst + static_cast<ptrdiff_t>(s) * kc;
    if (cs == 1 && fast_t) {
      fast_t(kc, mr, A + s * rs, rs, d);
    } else if (rs == 1) {  // columns of A contiguous: MR consecutive values per k
      for (int k = 0; k < kc; ++k) {
        const float* src = A + k * cs + s;
        for (int i = 0; i < mr; ++i) d[k * MR + i] = src[i];
        for (int i = mr; i < MR; ++i) d[k * MR + i] = 0.0f;
      }
    } else {  // rows contiguous (cs == 1) or general: transpose row by row
      for (int i = 0; i < mr; ++i) {
        const float* src = A + (s + i) * rs;
        for (int k = 0; k < kc; ++k) d[k * MR + i] = src[k * cs];
      }
      for (int i = mr; i < MR; ++i)
        for (int k = 0; k < kc; ++k) d[k * MR + i] = 0.0f;
    }
  }
}

// Packs one NR-wide sliver of B (kc, nr) (already offset) as dst[k * NR + j], columns past nr zero.
void pack_b_sliver(int kc, int nr, const float* B, ptrdiff_t rs, ptrdiff_t cs, int NR,
                   PackT fast_t, float* dst) {
  if (rs == 1 && fast_t) {
    fast_t(kc, nr, B, cs, dst);
  } else if (cs == 1) {  // rows of B contiguous: copy nr floats per k
    for (int k = 0; k < kc; ++k) {
      std::memcpy(dst + k * NR, B + k * rs, sizeof(float) * nr);
      for (int j = nr; j < NR; ++j) dst[k * NR + j] = 0.0f;
    }
  } else {  // columns contiguous (B = W^T) or general: transpose column by column
    for (int j = 0; j < nr; ++j) {
      const float* src = B + j * cs;
      for (int k = 0; k < kc; ++k) dst[k * NR + j] = src[k * rs];
    }
    for (int j = nr; j < NR; ++j)
      for (int k = 0; k < kc; ++k) dst[k * NR + j] = 0.0f;
  }
}

float* align64(float* p) {
  const uintptr_t u = reinterpret_cast<uintptr_t>(p);
  return p + ((64 - (u & 63)) & 63) / sizeof(float);
}

// A float buffer aligned to 64 bytes, not zero-initialised (packing writes every element).
struct AlignedBuf {
  std::unique_ptr<float[]> mem;
  float* p;
  explicit AlignedBuf(size_t n) : mem(new float[n + 16]), p(align64(mem.get())) {}
};

}  // namespace

float* GemmScratch::get(size_t n) {
  if (size < n) {
    mem.reset(new float[n + 16]);
    size = n;
  }
  return align64(mem.get());
}

bool gemm_isa_supported(GemmIsa isa) { return isa == GemmIsa::Auto || cpu_has(isa); }


void sgemm(int M, int N, int K, const float* A, ptrdiff_t a_rs, ptrdiff_t a_cs, const float* B,
           ptrdiff_t b_rs, ptrdiff_t b_cs, float* C, ptrdiff_t ldc, bool accumulate,
           const float* bias, GemmIsa isa_request, GemmScratch* scratch) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0) {  // empty sum: C = [C +] bias
    for (int i = 0; i < M; ++i)
      for (int j = 0; j < N; ++j) {
        float& c = C[i * ldc + j];
        c = (accumulate ? c : 0.0f) + (bias ? bias[j] : 0.0f);
      }
    return;
  }
  const GemmIsa isa = resolve(isa_request);
#ifdef SCORE_X86
  if (use_small_m_path(isa, M, K, a_cs, b_rs)) {
    small_m_avx512(M, N, K, A, a_rs, B, b_cs, C, ldc, accumulate, bias);
    return;
  }
#endif
  const KernelSet& ks = kernels_for(isa);
  const int MR = ks.MR, NR = ks.NR;
  // K in equal blocks of at most ks.KC (384 -> 2 x 192, not 256 + 128).
  const int KC = (K + (K + ks.KC - 1) / ks.KC - 1) / ((K + ks.KC - 1) / ks.KC);
  const int NC = std::min(ks.NC, (N + NR - 1) / NR * NR);
  const int m_slivers = (M + MR - 1) / MR;
  // Below ~2e5 flops the fork/join costs more than it saves. Inside another parallel region
  // (attention runs one GEMM per head on each thread) stay on the calling thread.
  const bool par = 2.0 * M * N * K > 2e5 && !omp_in_parallel() && omp_get_max_threads() > 1;
  // Buffers: the (kc, nc) B panel as NR slivers, shared; one (MC, kc) A block per thread.
  // A single-threaded call with a scratch takes both from it.
  const size_t b_floats = static_cast<size_t>(KC) * NC, a_floats = static_cast<size_t>(ks.MC) * KC;
  std::unique_ptr<AlignedBuf> bown;
  float* bpack = nullptr;
  float* apack_shared = nullptr;
  if (scratch && !par) {
    bpack = scratch->get(b_floats + a_floats + 16);
    apack_shared = align64(bpack + b_floats);
  } else {
    bown = std::make_unique<AlignedBuf>(b_floats);
    bpack = bown->p;
  }

  parallel_team(par, [&](int nth, int tid) {
    std::unique_ptr<AlignedBuf> aown;
    float* apack = apack_shared;
    if (!apack) {
      aown = std::make_unique<AlignedBuf>(a_floats);
      apack = aown->p;
    }
    // Partial tiles of C (MR * NR <= 16 * 32); zeroed so that the lanes outside the valid
    // part, computed and discarded, never hold garbage (NaN / denormal slow paths).
    alignas(64) float tile[16 * 32] = {};
    alignas(64) float btile[32];  // partial bias slice
    // Split the output among threads: by rows when there are enough MR slivers for an
    // even split and C is at least as tall as wide, else by columns (NR slivers of each B
    // panel). A row split has every thread stream the whole B panel, a column split has
    // every thread pack the whole A block: the smaller side is the one read twice
    // (measured 3-9% either way on the model's d-weight and forward shapes).
    const bool split_rows = m_slivers >= 4 * nth && M >= N;
    int row0 = 0, row1 = M;
    if (split_rows) {
      row0 = std::min(M, static_cast<int>(static_cast<int64_t>(m_slivers) * tid / nth) * MR);
      row1 = std::min(M, static_cast<int>(static_cast<int64_t>(m_slivers) * (tid + 1) / nth) * MR);
    }
    // This thread's rows in equal blocks of at most ks.MC (whole slivers), so that no block
    // is a thin remainder that re-streams every B sliver for little work.
    const int my_slivers = (row1 - row0 + MR - 1) / MR;
    const int mc_max = ks.MC / MR;
    const int n_mblocks = std::max(1, (my_slivers + mc_max - 1) / mc_max);
    const int MC = (my_slivers + n_mblocks - 1) / n_mblocks * MR;
    for (int jc = 0; jc < N; jc += NC) {
      const int nc = std::min(NC, N - jc);
      const int n_slivers = (nc + NR - 1) / NR;
      int s0 = 0, s1 = n_slivers;
      if (!split_rows) {
        s0 = n_slivers * tid / nth;
        s1 = n_slivers * (tid + 1) / nth;
      }
      for (int pc = 0; pc < K; pc += KC) {
        const int kc = std::min(KC, K - pc);
        // Pack the B panel (kc, nc) together, each thread its share of the slivers; the
        // barrier makes the whole panel visible.
        for (int s = n_slivers * tid / nth; s < n_slivers * (tid + 1) / nth; ++s) {
          const int j = s * NR;
          pack_b_sliver(kc, std::min(NR, nc - j), B + pc * b_rs + (jc + j) * b_cs, b_rs, b_cs,
                        NR, ks.pack_b_t, bpack + static_cast<ptrdiff_t>(j) * kc);
        }
        if (nth > 1) {
#pragma omp barrier
        }
        const bool load_c = accumulate || pc > 0;
        const float* bias_panel = (bias && pc == 0) ? bias + jc : nullptr;
        for (int ic = row0; ic < row1 && s0 < s1; ic += MC) {
          const int mc = std::min(MC, row1 - ic);
          pack_a(mc, kc, A + ic * a_rs + pc * a_cs, a_rs, a_cs, MR, ks.pack_a_t, apack);
          for (int s = s0; s < s1; ++s) {
            const int j = s * NR, nr = std::min(NR, nc - j);
            const float* bp = bpack + static_cast<ptrdiff_t>(j) * kc;
            const float* bias_s = bias_panel ? bias_panel + j : nullptr;
            if (bias_s && nr < NR) {
              std::fill(btile, btile + NR, 0.0f);
              std::copy(bias_s, bias_s + nr, btile);
              bias_s = btile;
            }
            for (int ir = 0; ir < mc; ir += MR) {
              const int mr = std::min(MR, mc - ir);
              const float* ap = apack + static_cast<ptrdiff_t>(ir) * kc;
              float* c = C + (ic + ir) * ldc + jc + j;
              if (mr == MR && nr == NR) {
                ks.ukr(kc, ap, bp, c, ldc, bias_s, load_c);
              } else {  // edge tile: compute the full tile locally, write back the valid part
                if (load_c) {
                  for (int i = 0; i < mr; ++i) std::copy(c + i * ldc, c + i * ldc + nr, tile + i * NR);
                }
                ks.ukr(kc, ap, bp, tile, NR, bias_s, load_c);
                for (int i = 0; i < mr; ++i) std::copy(tile + i * NR, tile + i * NR + nr, c + i * ldc);
              }
            }
          }
        }
        // All threads finish this panel before the next pack overwrites it.
        if (nth > 1) {
#pragma omp barrier
        }
      }
    }
  });
}

void dgemm(int M, int N, int K, const double* A, ptrdiff_t a_rs, ptrdiff_t a_cs, const double* B,
           ptrdiff_t b_rs, ptrdiff_t b_cs, double* C, ptrdiff_t ldc, bool accumulate,
           const double* bias) {
  parallel_for(M, 2.0 * M * N * K > 2e5, [&](int i) {
    for (int j = 0; j < N; ++j) {
      double s = 0.0;
      for (int k = 0; k < K; ++k) s += A[i * a_rs + k * a_cs] * B[k * b_rs + j * b_cs];
      double& c = C[i * ldc + j];
      c = (accumulate ? c : 0.0) + (bias ? bias[j] : 0.0) + s;
    }
  });
}

}  // namespace score::cpu
