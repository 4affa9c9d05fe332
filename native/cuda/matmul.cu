// A linear layer with weight (OC, IC) on top of gemm.cu: the three products are
// one kernel with different operand layouts; the bias gradient is a column sum.
#include "cuda/common.h"
#include "cuda/kernels.h"

namespace score::cuda {
namespace {

// dbias (OC) += column sums of dout (N, OC). Block: 32 columns x 8 row-walkers.
__global__ void bias_grad_kernel(float* dbias, const float* dout, int N, int OC) {
  __shared__ float part[8][33];
  const int c = blockIdx.x * 32 + threadIdx.x;
  float s = 0.f;
  if (c < OC)
    for (int n = threadIdx.y; n < N; n += 8) s += dout[static_cast<int64_t>(n) * OC + c];
  part[threadIdx.y][threadIdx.x] = s;
  __syncthreads();
  if (threadIdx.y == 0 && c < OC) {
    for (int y = 1; y < 8; y++) s += part[y][threadIdx.x];
    dbias[c] += s;
  }
}

// out (N, OC) += bias, broadcast over rows.
__global__ void add_bias_kernel(float* out, const float* bias, int N, int OC) {
  const int64_t idx = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (idx < static_cast<int64_t>(N) * OC) out[idx] += bias[idx % OC];
}

void run(const Gemm& g, MatmulPrecision prec, cudaStream_t stream, LtMatmul* lt) {
  if (lt && prec == MatmulPrecision::BF16) {
    Gemm nb = g;
    nb.bias = nullptr;  // cuBLASLt runs the product; the bias is a separate pass
    if (lt->run(nb, stream)) {
      if (g.bias) {
        add_bias_kernel<<<ceil_div(static_cast<int64_t>(g.M) * g.N, 256), 256, 0, stream>>>(
            g.C, g.bias, g.M, g.N);
        SCORE_CUDA_LAUNCH_CHECK();
      }
      return;
    }
  }
  gemm(g, prec, stream);
}

}  // namespace

void matmul_forward(float* out, const float* inp, const float* weight, const float* bias, int N,
                    int IC, int OC, MatmulPrecision prec, cudaStream_t stream, LtMatmul* lt) {
  // out (N, OC) = inp (N, IC) @ weight^T: B(k, j) = weight[j*IC + k]
  Gemm g;
  g.A = inp, g.lda = IC, g.a_kcontig = true;
  g.B = weight, g.ldb = IC, g.b_ncontig = false;
  g.C = out, g.ldc = OC, g.bias = bias;
  g.M = N, g.N = OC, g.K = IC;
  run(g, prec, stream, lt);
}

void matmul_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                     const float* weight, int N, int IC, int OC, MatmulPrecision prec,
                     cudaStream_t stream, LtMatmul* lt) {
  if (dinp) {  // dinp (N, IC) += dout (N, OC) @ weight (OC, IC)
    Gemm g;
    g.A = dout, g.lda = OC, g.a_kcontig = true;
    g.B = weight, g.ldb = IC, g.b_ncontig = true;
    g.C = dinp, g.ldc = IC, g.accumulate = true;
    g.M = N, g.N = IC, g.K = OC;
    run(g, prec, stream, lt);
  }
  if (dweight) {  // dweight (OC, IC) += dout^T (OC, N) @ inp (N, IC): A(i, k) = dout[k*OC + i]
    Gemm g;
    g.A = dout, g.lda = OC, g.a_kcontig = false;
    g.B = inp, g.ldb = IC, g.b_ncontig = true;
    g.C = dweight, g.ldc = IC, g.accumulate = true;
    g.M = OC, g.N = IC, g.K = N;
    run(g, prec, stream, lt);
  }
  if (dbias) {
    bias_grad_kernel<<<ceil_div(OC, 32), dim3(32, 8), 0, stream>>>(dbias, dout, N, OC);
    SCORE_CUDA_LAUNCH_CHECK();
  }
}

}  // namespace score::cuda
