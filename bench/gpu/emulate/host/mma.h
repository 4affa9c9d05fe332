// nvcuda::wmma for the emulation, 16x16x16 only (what gemm.cu uses). Every lane holds the
// whole tile: loads read it all, mma_sync multiplies bf16 values (exact in float) and
// accumulates in float, and lane 0 alone stores (the kernel's __syncwarp after the store
// orders the other lanes' reads). The fragment's register layout is not emulated: the
// kernel only fills, loads, multiplies and stores fragments, which do not depend on it.
#pragma once
#include "cuda_bf16.h"

namespace nvcuda::wmma {
struct row_major {};
struct col_major {};
struct matrix_a {};
struct matrix_b {};
struct accumulator {};
enum layout_t { mem_row_major, mem_col_major };

template <typename Use, int M, int N, int K, typename T, typename Layout = void>
struct fragment {
  static_assert(M == 16 && N == 16 && K == 16, "the emulation has 16x16x16 fragments only");
  float v[16][16];  // matrix_a (row, k), matrix_b (k, col), accumulator (row, col)
};

inline float to_float(float x) { return x; }
inline float to_float(__nv_bfloat16 x) { return bf2f(x.x); }

template <typename T, typename L>
void load_matrix_sync(fragment<matrix_a, 16, 16, 16, T, L>& f, const T* p, unsigned ld) {
  for (int i = 0; i < 16; i++)
    for (int k = 0; k < 16; k++)
      f.v[i][k] = to_float(std::is_same_v<L, row_major> ? p[i * ld + k] : p[k * ld + i]);
}
template <typename T, typename L>
void load_matrix_sync(fragment<matrix_b, 16, 16, 16, T, L>& f, const T* p, unsigned ld) {
  for (int k = 0; k < 16; k++)
    for (int j = 0; j < 16; j++)
      f.v[k][j] = to_float(std::is_same_v<L, row_major> ? p[k * ld + j] : p[j * ld + k]);
}
inline void fill_fragment(fragment<accumulator, 16, 16, 16, float>& f, float x) {
  for (auto& r : f.v)
    for (float& e : r) e = x;
}
template <typename T, typename LA, typename LB>
void mma_sync(fragment<accumulator, 16, 16, 16, float>& d, const fragment<matrix_a, 16, 16, 16, T, LA>& a,
              const fragment<matrix_b, 16, 16, 16, T, LB>& b, const fragment<accumulator, 16, 16, 16, float>& c) {
  float r[16][16];
  for (int i = 0; i < 16; i++)
    for (int j = 0; j < 16; j++) {
      float s = c.v[i][j];
      for (int k = 0; k < 16; k++) s += a.v[i][k] * b.v[k][j];
      r[i][j] = s;
    }
  std::memcpy(d.v, r, sizeof r);
}
inline void store_matrix_sync(float* p, const fragment<accumulator, 16, 16, 16, float>& f, unsigned ld,
                              layout_t layout) {
  if (::emu::lane != 0) return;
  for (int i = 0; i < 16; i++)
    for (int j = 0; j < 16; j++) (layout == mem_row_major ? p[i * ld + j] : p[j * ld + i]) = f.v[i][j];
}
}  // namespace nvcuda::wmma
