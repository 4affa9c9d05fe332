// A linear layer with weight (OC, IC) on top of gemm.cu: the three products are
// one kernel with different operand layouts; the bias gradient is a column sum.
#include <algorithm>

#include "cuda/common.h"
#include "cuda/kernels.h"
#include "cuda/vec.cuh"

namespace score::cuda {
namespace {

// dbias (OC) += column sums of dout (N, OC; row stride ld). Block: 32 columns x 8
// row-walkers over one slice of `rows` rows (blockIdx.y). One block per column strip
// would leave most SMs idle (24 blocks at OC = 768), each warp walking N / 8 rows one
// memory latency after another; slices fill the card, and their partial sums meet in
// float atomics, so the summation order (not the set of terms) varies from run to run
// when N > rows.
constexpr int kBiasRows = 256;
__global__ void bias_grad_kernel(float* dbias, const float* dout, int N, int OC, int64_t ld,
                                 int rows) {
  __shared__ float part[8][33];
  const int lane = threadIdx.x % 32, y = threadIdx.x / 32;
  const int c = blockIdx.x * 32 + lane;
  const int n0 = blockIdx.y * rows, n1 = min(N, n0 + rows);
  float s = 0.f;
  if (c < OC)
    for (int n = n0 + y; n < n1; n += 8) s += dout[n * ld + c];
  part[y][lane] = s;
  __syncthreads();
  if (y == 0 && c < OC) {
    for (int k = 1; k < 8; k++) s += part[k][lane];
    if (gridDim.y == 1)
      dbias[c] += s;
    else
      atomicAdd(dbias + c, s);
  }
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
      dst[r * ld + c] = static_cast<uint16_t>(bf16_bits(src[r * ld + c]));
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
             cudaStream_t stream) {
  if (rows == 0 || cols == 0) return;
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
  if (dbias && N > 0) {  // no rows: nothing to add (and an empty grid is a launch error)
    // At most 65535 slices (the grid's y limit): rows per slice grow past kBiasRows only
    // beyond 16 M rows.
    const int rows = std::max(kBiasRows, ceil_div(N, 65535));
    bias_grad_kernel<<<dim3(ceil_div(OC, 32), ceil_div(N, rows)), 256, 0, stream>>>(dbias, dout, N,
                                                                                   OC, ldo, rows);
    SCORE_CUDA_LAUNCH_CHECK();
  }
}

}  // namespace score::cuda
