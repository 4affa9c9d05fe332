// The one matrix product behind every linear layer (matmul.cpp) and the fused
// classifier (classifier.cpp):
//
//   C (M, N) = [C +] A (M, K) @ B (K, N) [+ bias (N)]
//
// A and B are read through (row, column) strides, so transposed operands cost
// nothing extra: element (i, k) of A is A[i*a_rs + k*a_cs], element (k, j) of B
// is B[k*b_rs + j*b_cs]. C is row-major with leading dimension ldc.
// accumulate = true adds into C instead of overwriting it; bias is nullable.
//
// The float version is a packed, cache-blocked GEMM with a register-tiled
// micro-kernel chosen at run time (AVX-512, AVX2+FMA or portable C++) and
// OpenMP threads over output tiles. Any M, N, K >= 0 is valid (K = 0 gives
// C = [C +] bias).
#pragma once
#include <cstddef>
#include <memory>

namespace score::cpu {

// Which code path sgemm uses. Auto (the default) picks the best the CPU supports; the
// others exist so that tests and the kernel lab (bench/kernels) can exercise every path on
// one machine. Avx512Packed is Avx512 without the small-M dot-product path (the packed
// path at every shape). Asking for a path the CPU lacks falls back to Auto.
enum class GemmIsa { Auto, Avx512, Avx512Packed, Avx2, Generic };
bool gemm_isa_supported(GemmIsa isa);

// The largest M that takes the AVX-512 small-M path when the operands allow it (gemm.cpp).
constexpr int kGemmSmallM = 32;

// Packing buffers that a caller making many small single-threaded products (attention:
// several per head on each thread) keeps across calls, so that sgemm does not allocate
// and free per call (which, for buffers of ~100 KiB, makes glibc grow and trim the heap
// every time: page faults and TLB shootdowns). Used only when the call runs on one thread.
struct GemmScratch {
  std::unique_ptr<float[]> mem;
  size_t size = 0;  // floats
  float* get(size_t n);  // at least n floats, 64-byte aligned; contents undefined
};

void sgemm(int M, int N, int K, const float* A, ptrdiff_t a_rs, ptrdiff_t a_cs, const float* B,
           ptrdiff_t b_rs, ptrdiff_t b_cs, float* C, ptrdiff_t ldc, bool accumulate,
           const float* bias, GemmIsa isa = GemmIsa::Auto, GemmScratch* scratch = nullptr);

// The same contract by plain loops in double (the gradient-check precision).
void dgemm(int M, int N, int K, const double* A, ptrdiff_t a_rs, ptrdiff_t a_cs, const double* B,
           ptrdiff_t b_rs, ptrdiff_t b_cs, double* C, ptrdiff_t ldc, bool accumulate,
           const double* bias);

// Overloads so templated kernels can write gemm(...) for F = float or double.
inline void gemm(int M, int N, int K, const float* A, ptrdiff_t a_rs, ptrdiff_t a_cs,
                 const float* B, ptrdiff_t b_rs, ptrdiff_t b_cs, float* C, ptrdiff_t ldc,
                 bool accumulate, const float* bias, GemmScratch* scratch = nullptr) {
  sgemm(M, N, K, A, a_rs, a_cs, B, b_rs, b_cs, C, ldc, accumulate, bias, GemmIsa::Auto, scratch);
}
inline void gemm(int M, int N, int K, const double* A, ptrdiff_t a_rs, ptrdiff_t a_cs,
                 const double* B, ptrdiff_t b_rs, ptrdiff_t b_cs, double* C, ptrdiff_t ldc,
                 bool accumulate, const double* bias, GemmScratch* = nullptr) {
  dgemm(M, N, K, A, a_rs, a_cs, B, b_rs, b_cs, C, ldc, accumulate, bias);
}

}  // namespace score::cpu
