#include "cpu/packed_linear.h"

#include <algorithm>
#include <cstdint>

#include "cpu/parallel.h"
#include "cpu/x86.h"
#include "score/errors.h"


namespace score::cpu {
namespace {

constexpr int kW = 16;   // columns per sliver: one 512-bit vector of floats
constexpr int kMR = 8;   // rows per block: 8 x 2 slivers = 16 accumulators

size_t sliver_count(int OC) { return (static_cast<size_t>(OC) + kW - 1) / kW; }

#ifdef SCORE_X86
// c (MR, ncols) = a (MR, K; row stride lda) @ p (NS slivers, each (K, 16)) [+ bias (ncols)],
// ncols <= 16 * NS valid columns of the slivers, c rows ldc apart. pf (nullable): two
// slivers to prefetch into L2 alongside, a 64-byte line of each per k.
template <int MR, int NS>
__attribute__((target("avx512f"))) void block(int K, const float* a, ptrdiff_t lda,
                                              const float* p, float* c, ptrdiff_t ldc,
                                              const float* bias, int ncols, const float* pf) {
  __m512 acc[MR][NS];
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 2
    for (int s = 0; s < NS; ++s) acc[i][s] = _mm512_setzero_ps();
  const size_t sliver = static_cast<size_t>(K) * kW;
  for (int k = 0; k < K; ++k) {
    __m512 b[NS];
#pragma GCC unroll 2
    for (int s = 0; s < NS; ++s) b[s] = _mm512_load_ps(p + s * sliver + static_cast<size_t>(k) * kW);
    if (pf) {
      _mm_prefetch(reinterpret_cast<const char*>(pf + static_cast<size_t>(k) * kW), _MM_HINT_T1);
      _mm_prefetch(reinterpret_cast<const char*>(pf + sliver + static_cast<size_t>(k) * kW), _MM_HINT_T1);
    }
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) {
      const __m512 x = _mm512_set1_ps(a[i * lda + k]);
#pragma GCC unroll 2
      for (int s = 0; s < NS; ++s) acc[i][s] = _mm512_fmadd_ps(x, b[s], acc[i][s]);
    }
  }
#pragma GCC unroll 2
  for (int s = 0; s < NS; ++s) {
    const int n = std::min(kW, ncols - s * kW);
    const __mmask16 m = static_cast<__mmask16>(n == kW ? 0xFFFF : (1u << n) - 1);
    const __m512 bv = bias ? _mm512_maskz_loadu_ps(m, bias + s * kW) : _mm512_setzero_ps();
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i)
      _mm512_mask_storeu_ps(c + i * ldc + s * kW, m, _mm512_add_ps(acc[i][s], bv));
  }
}

// dst (IC, 16) = rows 0..n-1 of w (n, IC) transposed, columns n..15 zero: one 16-lane
// gather per k (the 16 rows' elements at column k).
__attribute__((target("avx512f"))) void pack_sliver(const float* w, int n, int IC, float* dst) {
  const __m512i rows = _mm512_mullo_epi32(
      _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15), _mm512_set1_epi32(IC));
  const __mmask16 m = static_cast<__mmask16>(n == kW ? 0xFFFF : (1u << n) - 1);
  for (int k = 0; k < IC; ++k)
    _mm512_store_ps(dst + static_cast<size_t>(k) * kW,
                    _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m, rows, w + k, 4));
}

using BlockFn = void (*)(int, const float*, ptrdiff_t, const float*, float*, ptrdiff_t,
                         const float*, int, const float*);
template <int NS>
BlockFn block_for(int mr) {
  switch (mr) {
    case 1: return block<1, NS>;
    case 2: return block<2, NS>;
    case 3: return block<3, NS>;
    case 4: return block<4, NS>;
    case 5: return block<5, NS>;
    case 6: return block<6, NS>;
    case 7: return block<7, NS>;
    default: return block<8, NS>;
  }
}
#endif  // SCORE_X86

}  // namespace

bool packed_linear_supported() {
#ifdef SCORE_X86
  return __builtin_cpu_supports("avx512f");
#else
  return false;
#endif
}

size_t PackedLinear::bytes_for(int OC, int IC) {
  return (sliver_count(OC) * kW * static_cast<size_t>(IC) + kW) * sizeof(float);
}

void PackedLinear::pack(const float* weight, int OC, int IC) {
  SCORE_CHECK(packed_linear_supported(), Internal, "PackedLinear: this CPU has no AVX-512F");
  const size_t S = sliver_count(OC), sliver = static_cast<size_t>(IC) * kW;
  data_.resize(S * sliver + kW);  // + kW: room to align to 64 bytes; pack writes every sliver float
  const uintptr_t at = reinterpret_cast<uintptr_t>(data_.data());
  offset_ = (((at + 63) & ~static_cast<uintptr_t>(63)) - at) / sizeof(float);
  OC_ = OC;
  IC_ = IC;
  // Sliver s holds columns 16s..16s+15 of W^T, i.e. rows 16s.. of W, k-major. Each
  // sliver reads 16 rows of W (16 IC floats, L2-resident) and writes one run.
#ifdef SCORE_X86
  float* slivers = data_.data() + offset_;
  parallel_for(static_cast<long long>(S), static_cast<double>(OC) * IC > 65536, [&](long long s) {
    const int j0 = static_cast<int>(s) * kW;
    pack_sliver(weight + static_cast<size_t>(j0) * IC, std::min(kW, OC - j0), IC,
                slivers + static_cast<size_t>(s) * sliver);
  });
#endif
}

void PackedLinear::forward(float* out, const float* inp, const float* bias, int N) const {
  SCORE_CHECK(!empty(), Internal, "PackedLinear::forward before pack()");
#ifdef SCORE_X86
  if (N <= 0) return;
  // Units of two slivers (32 columns) split statically over the threads, so each thread
  // streams one contiguous range of the packed weight. Every unit walks the rows in
  // blocks of 8 and prefetches the next unit into L2 meanwhile, so that the memory
  // stream overlaps the FMAs (measured 1.1-1.4x at 8-32 rows; prefetches never fault, so
  // the last unit's look past the end is harmless).
  const int S = static_cast<int>(sliver_count(OC_)), units = (S + 1) / 2;
  const size_t sliver = static_cast<size_t>(IC_) * kW;
  parallel_for(units, 2.0 * N * OC_ * IC_ > 2e5, [&](int u) {
    const int s0 = 2 * u, ns = std::min(2, S - s0), col0 = s0 * kW;
    const int ncols = std::min(ns * kW, OC_ - col0);
    const float* p = slivers() + static_cast<size_t>(s0) * sliver;
    const float* b = bias ? bias + col0 : nullptr;
    for (int i0 = 0; i0 < N; i0 += kMR) {
      const int mr = std::min(kMR, N - i0);
      const BlockFn fn = ns == 2 ? block_for<2>(mr) : block_for<1>(mr);
      fn(IC_, inp + static_cast<size_t>(i0) * IC_, IC_, p, out + static_cast<size_t>(i0) * OC_ + col0,
         OC_, b, ncols, u + 1 < units ? p + 2 * sliver : nullptr);
    }
  });
#else
  (void)out, (void)inp, (void)bias, (void)N;
#endif
}

}  // namespace score::cpu
