// A linear layer with weight (OC, IC) on top of gemm.cu: the three products are
// one kernel with different operand layouts; the bias gradient is a column sum
// (columns.cuh).
#include <algorithm>

#include "cuda/columns.cuh"
#include "cuda/common.h"
#include "cuda/kernels.h"
#include "cuda/vec.cuh"

namespace score::cuda {
namespace {

// One pass over src (N, F; row stride ld): its bf16 copy into dst16 (nullable; same
// strides) and its column sums added into colsum (nullable): a bias gradient, alone or
// with the conversion of the output gradient it is summed from (columns.cuh). 16-byte
// loads when VEC.
template <bool VEC>
__global__ void __launch_bounds__(kColumnThreads)
    column_pass_kernel(uint16_t* dst16, float* colsum, const float* src, int N, int F, int64_t ld,
                       int rows) {
  __shared__ float4 part[8][32];
  walk_columns(part, N, F, ld, rows, colsum, [&](int64_t at, int cnt) {
    if (VEC) {  // cnt is 4: F % 4 == 0
      const float4 v = *reinterpret_cast<const float4*>(src + at);
      if (dst16) *reinterpret_cast<uint2*>(dst16 + at) = bf16x4(v);
      return v;
    }
    float v[4] = {0.f, 0.f, 0.f, 0.f};
    for (int e = 0; e < cnt; e++) {
      v[e] = src[at + e];
      if (dst16) store(dst16 + at + e, v[e]);
    }
    return make_float4(v[0], v[1], v[2], v[3]);
  });
}

void column_pass(uint16_t* dst16, float* colsum, const float* src, int N, int F, int64_t ld,
                 cudaStream_t stream) {
  if (N == 0 || F == 0) return;  // nothing to add (and an empty grid is a launch error)
  const bool vec = F % 4 == 0 && ld % 4 == 0 && aligned(src, 16) && aligned(dst16, 8);
  const dim3 grid = column_grid(N, F);
  if (vec)
    column_pass_kernel<true><<<grid, kColumnThreads, 0, stream>>>(dst16, colsum, src, N, F, ld, column_rows(N));
  else
    column_pass_kernel<false><<<grid, kColumnThreads, 0, stream>>>(dst16, colsum, src, N, F, ld, column_rows(N));
  SCORE_CUDA_LAUNCH_CHECK();
}

// out (N, OC; row stride ld) += bias, broadcast over rows.
__global__ void add_bias_kernel(float* out, const float* bias, int N, int OC, int64_t ld) {
  const int64_t idx = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (idx < static_cast<int64_t>(N) * OC) out[idx / OC * ld + idx % OC] += bias[idx % OC];
}

// dst = bf16(src) over (rows, cols) at row stride ld: groups of 4 columns (8-byte stores
// of 16-byte loads) where every group is aligned, else one element a thread.
__global__ void to_bf16_kernel(uint16_t* dst, const float* src, int64_t rows, int64_t cols,
                               int64_t ld, bool vec) {
  const int64_t per_row = vec ? cols / 4 : cols, n = rows * per_row;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t r = i / per_row, c = i % per_row;
    if (vec) {
      const float4 v = *reinterpret_cast<const float4*>(src + r * ld + 4 * c);
      *reinterpret_cast<uint2*>(dst + r * ld + 4 * c) = bf16x4(v);
    } else {
      store(dst + r * ld + c, src[r * ld + c]);
    }
  }
}

void run(const Gemm& g, MatmulPrecision prec, cudaStream_t stream, LtMatmul* lt) {
  if (lt && prec == MatmulPrecision::BF16) {
    if (lt->run(g, stream)) return;  // the bias, if any, in cuBLASLt's epilogue
    Gemm nb = g;
    nb.bias = nullptr;  // where that is refused: cuBLASLt runs the product, the bias a pass
    if (g.bias && lt->run(nb, stream)) {
      add_bias_kernel<<<ceil_div(static_cast<int64_t>(g.M) * g.N, 256), 256, 0, stream>>>(
          g.C, g.bias, g.M, g.N, g.ldc);
      SCORE_CUDA_LAUNCH_CHECK();
      return;
    }
  }
  gemm(g, prec, stream);
}

// The bf16 copy of (rows, cols; ld) in scratch slot `slot` of lt (same strides).
const uint16_t* converted(LtMatmul* lt, int slot, const float* src, int rows, int cols, int64_t ld,
                          cudaStream_t stream) {
  uint16_t* dst = lt->bf16_scratch(slot, rows == 0 ? 0 : static_cast<size_t>(rows - 1) * ld + cols);
  to_bf16(dst, src, rows, cols, ld, stream);
  return dst;
}

}  // namespace

void to_bf16(uint16_t* dst, const float* src, int64_t rows, int64_t cols, int64_t ld,
             cudaStream_t stream, float* colsum) {
  if (rows == 0 || cols == 0) return;
  if (colsum) {
    column_pass(dst, colsum, src, static_cast<int>(rows), static_cast<int>(cols), ld, stream);
    return;
  }
  const bool vec = cols % 4 == 0 && ld % 4 == 0 && aligned(src, 16) && aligned(dst, 8);
  const int64_t n = rows * (vec ? cols / 4 : cols);
  const int blocks = static_cast<int>(std::min<int64_t>(ceil_div(n, int64_t(256)), 8192));
  to_bf16_kernel<<<blocks, 256, 0, stream>>>(dst, src, rows, cols, ld, vec);
  SCORE_CUDA_LAUNCH_CHECK();
}

void matmul_forward(float* out, const float* inp, const float* weight, const float* bias, int N,
                    int IC, int OC, MatmulPrecision prec, cudaStream_t stream, LtMatmul* lt,
                    int ldo, const uint16_t* weight16, const uint16_t* inp16) {
  // out (N, ldo) = inp (N, IC) @ weight^T: B(k, j) = weight[j*IC + k]
  Gemm g;
  g.A = inp, g.lda = IC, g.a_kcontig = true;
  g.B = weight, g.ldb = IC, g.b_ncontig = false;
  g.C = out, g.ldc = ldo ? ldo : OC, g.bias = bias;
  g.M = N, g.N = OC, g.K = IC;
  // bf16 operands: the weight's copy, and inp's from its producer, or converted here for
  // cuBLASLt (our kernel rounds float32 operands as it stages them).
  if (weight16 && prec == MatmulPrecision::BF16 && N > 0) {
    g.A16 = inp16 ? inp16 : lt ? converted(lt, 0, inp, N, IC, IC, stream) : nullptr;
    if (g.A16) g.B16 = weight16;
  }
  run(g, prec, stream, lt);
}

void matmul_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                     const float* weight, int N, int IC, int OC, MatmulPrecision prec,
                     cudaStream_t stream, LtMatmul* lt, int ldo, const uint16_t* weight16,
                     const uint16_t* inp16, bool dinp_overwrite, const uint16_t* dout16_given) {
  if (!ldo) ldo = OC;
  // With the weight's bf16 copy, dout's copy comes from its producer, or is converted once
  // for both products on cuBLASLt.
  const bool bf = weight16 && prec == MatmulPrecision::BF16 && N > 0 && (dinp || dweight);
  const uint16_t* dout16 = !bf ? nullptr
                           : dout16_given ? dout16_given
                           : lt ? converted(lt, 0, dout, N, OC, ldo, stream)
                                : nullptr;
  if (dinp) {  // dinp (N, IC) += (or =) dout (N, OC) @ weight (OC, IC)
    Gemm g;
    g.A = dout, g.lda = ldo, g.a_kcontig = true;
    g.B = weight, g.ldb = IC, g.b_ncontig = true;
    g.C = dinp, g.ldc = IC, g.accumulate = !dinp_overwrite;
    g.M = N, g.N = IC, g.K = OC;
    if (dout16) g.A16 = dout16, g.B16 = weight16;
    run(g, prec, stream, lt);
  }
  if (dweight) {  // dweight (OC, IC) += dout^T (OC, N) @ inp (N, IC): A(i, k) = dout[k*ldo + i]
    Gemm g;
    g.A = dout, g.lda = ldo, g.a_kcontig = false;
    g.B = inp, g.ldb = IC, g.b_ncontig = true;
    g.C = dweight, g.ldc = IC, g.accumulate = true;
    g.M = OC, g.N = IC, g.K = N;
    if (dout16) g.A16 = dout16, g.B16 = inp16 ? inp16 : lt ? converted(lt, 1, inp, N, IC, IC, stream) : nullptr;
    run(g, prec, stream, lt);
  }
  if (dbias) column_pass(nullptr, dbias, dout, N, OC, ldo, stream);
}

}  // namespace score::cuda
