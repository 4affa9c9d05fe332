// The matrix product of the backend: a tensor-core kernel (bf16 inputs, float32
// accumulate, wmma 16x16x16) and a float32 SIMT kernel for verification. Both take any
// of the layouts the model needs through two compile-time flags (is A contiguous along
// k, is B contiguous along n), so the three products of a linear layer (forward,
// d-input, d-weight) and the attention products all use one kernel without transposing
// copies. The bf16 kernel reads float32 operands (rounded to bf16 as it stages them) or,
// when the Gemm carries both A16 and B16, their bf16 copies (half the bytes; the same
// products, since the copies are rounded the same way).
//
// bf16 kernel: a 128x128 block tile, BK = 32, 256 threads = 8 warps in a 2 x 4
// grid, each warp 64x32 (4 x 2 fragments). Global loads of the next k-tile go into
// registers while the tensor cores work on the current one (one shared buffer, two
// barriers per tile). Each operand is staged in shared memory in the layout it has in
// global memory (row-major fragments for k-contiguous A, column-major otherwise), so
// that both the global reads and the shared stores stay contiguous. Edges (shapes
// that are not multiples of the tile) are zero-filled on load and masked on store.
#include <cuda_bf16.h>
#include <algorithm>
#include <cstdint>
#include <mma.h>

#include "cuda/common.h"
#include "cuda/kernels.h"
#include "cuda/vec.cuh"

namespace score::cuda {
namespace {

using namespace nvcuda;

__device__ __forceinline__ int64_t batch_offset(const BatchStride& b, int z) {
  return static_cast<int64_t>(z / b.n_inner) * b.outer +
         static_cast<int64_t>((z % b.n_inner) / b.group) * b.inner;
}

constexpr int kBM = 128, kBN = 128, kBK = 32, kPad = 8, kThreads = 256;

// T: the operands' element type in memory, float or uint16_t (bf16 bits: A16, B16).
template <typename T, bool AK, bool BN, bool VEC, int MINB>
__global__ void __launch_bounds__(kThreads, MINB)
    gemm_bf16_kernel(Gemm g, const T* A0, const T* B0, int splits) {
  // Shared tiles (bf16): A as [i][k] (AK) or [k][i]; B as [k][j] (BN) or [j][k]:
  // each operand keeps its contiguous global dimension contiguous in shared memory.
  constexpr int A_LD = AK ? kBK + kPad : kBM + kPad;
  constexpr int B_LD = BN ? kBN + kPad : kBK + kPad;
  constexpr int A_ELEMS = AK ? kBM * A_LD : kBK * A_LD;
  constexpr int B_ELEMS = BN ? kBK * B_LD : kBN * B_LD;
  constexpr int TILE_BYTES = (A_ELEMS + B_ELEMS) * 2;
  constexpr int STAGE_BYTES = 8 * 16 * 16 * 4;  // epilogue: one 16x16 float tile per warp
  __shared__ __align__(128) unsigned char smem[TILE_BYTES > STAGE_BYTES ? TILE_BYTES : STAGE_BYTES];
  __nv_bfloat16* As = reinterpret_cast<__nv_bfloat16*>(smem);
  __nv_bfloat16* Bs = As + A_ELEMS;

  // blockIdx.z is the batch index, or (splits > 1, batch 1) the slice of K this block sums.
  const int z = splits > 1 ? 0 : blockIdx.z;
  const T* A = A0 + batch_offset(g.ab, z);
  const T* B = B0 + batch_offset(g.bb, z);
  float* C = g.C + batch_offset(g.cb, z);
  const int i0 = blockIdx.y * kBM, j0 = blockIdx.x * kBN;
  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
  const int wm = warp / 4, wn = warp % 4;  // warp tile origin: (wm*64, wn*32)
  int kbeg = 0, kend = g.K;
  if (splits > 1) {
    const int per = (g.K / splits + kBK - 1) / kBK * kBK;
    kbeg = blockIdx.z * per;
    kend = min(g.K, kbeg + per);
  }

  // Each thread stages 16 elements of each operand per k-tile as 4 runs of 4 along the
  // operand's contiguous dimension: one 16-byte (bf16: 8-byte) load (VEC: aligned
  // strides, run inside the matrix) or 4 guarded scalar loads, and one 8-byte shared
  // store. bf16 operands pass through float exactly, so staging rounds only float32.
  constexpr int RUNS = kBM * kBK / kThreads / 4;  // 4
  float4 ra[RUNS], rb[RUNS];
  // Run r of this thread: (row, col) of its first element in the tile's stored layout.
  auto a_at = [&](int r, int& outer, int& inner) {  // outer: stored row, inner: contiguous
    const int lin = r * kThreads + tid;
    constexpr int W = (AK ? kBK : kBM) / 4;  // runs per stored row
    outer = lin / W, inner = (lin % W) * 4;
  };
  auto b_at = [&](int r, int& outer, int& inner) {
    const int lin = r * kThreads + tid;
    constexpr int W = (BN ? kBN : kBK) / 4;
    outer = lin / W, inner = (lin % W) * 4;
  };
  auto load_run = [](const T* p, int64_t ld, int row, int col, int rows, int cols) {
    // 4 elements p[row*ld + col .. col+3], zero outside (rows, cols)
    float4 v = make_float4(0.f, 0.f, 0.f, 0.f);
    if (row >= rows) return v;
    const T* q = p + row * ld + col;
    if (VEC && col + 3 < cols) return load4(q);
    if (col < cols) v.x = to_float(__ldg(q));
    if (col + 1 < cols) v.y = to_float(__ldg(q + 1));
    if (col + 2 < cols) v.z = to_float(__ldg(q + 2));
    if (col + 3 < cols) v.w = to_float(__ldg(q + 3));
    return v;
  };
  auto load_global = [&](int k0) {
#pragma unroll
    for (int r = 0; r < RUNS; r++) {
      int o, c;
      a_at(r, o, c);
      ra[r] = AK ? load_run(A, g.lda, i0 + o, k0 + c, g.M, kend) : load_run(A, g.lda, k0 + o, i0 + c, kend, g.M);
      b_at(r, o, c);
      rb[r] = BN ? load_run(B, g.ldb, k0 + o, j0 + c, kend, g.N) : load_run(B, g.ldb, j0 + o, k0 + c, g.N, kend);
    }
  };
  auto store_shared = [&]() {
#pragma unroll
    for (int r = 0; r < RUNS; r++) {
      int o, c;
      a_at(r, o, c);
      __nv_bfloat162* da = reinterpret_cast<__nv_bfloat162*>(As + o * A_LD + c);
      da[0] = __floats2bfloat162_rn(ra[r].x, ra[r].y);
      da[1] = __floats2bfloat162_rn(ra[r].z, ra[r].w);
      b_at(r, o, c);
      __nv_bfloat162* db = reinterpret_cast<__nv_bfloat162*>(Bs + o * B_LD + c);
      db[0] = __floats2bfloat162_rn(rb[r].x, rb[r].y);
      db[1] = __floats2bfloat162_rn(rb[r].z, rb[r].w);
    }
  };

  using ALayout = typename std::conditional<AK, wmma::row_major, wmma::col_major>::type;
  using BLayout = typename std::conditional<BN, wmma::row_major, wmma::col_major>::type;
  wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[4][2];
#pragma unroll
  for (int a = 0; a < 4; a++)
#pragma unroll
    for (int b = 0; b < 2; b++) wmma::fill_fragment(acc[a][b], 0.0f);

  load_global(kbeg);
  for (int k0 = kbeg; k0 < kend; k0 += kBK) {
    __syncthreads();  // everyone is done reading the previous tile
    store_shared();
    __syncthreads();
    if (k0 + kBK < kend) load_global(k0 + kBK);  // in flight during the MMAs below
#pragma unroll
    for (int kk = 0; kk < kBK; kk += 16) {
      wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, ALayout> fa[4];
      wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, BLayout> fb[2];
#pragma unroll
      for (int a = 0; a < 4; a++) {
        const int i = wm * 64 + a * 16;
        wmma::load_matrix_sync(fa[a], AK ? As + i * A_LD + kk : As + kk * A_LD + i, A_LD);
      }
#pragma unroll
      for (int b = 0; b < 2; b++) {
        const int j = wn * 32 + b * 16;
        wmma::load_matrix_sync(fb[b], BN ? Bs + kk * B_LD + j : Bs + j * B_LD + kk, B_LD);
      }
#pragma unroll
      for (int a = 0; a < 4; a++)
#pragma unroll
        for (int b = 0; b < 2; b++) wmma::mma_sync(acc[a][b], fa[a], fb[b], acc[a][b]);
    }
  }

  // Epilogue through a per-warp 16x16 staging tile: alpha, bias, accumulate, edge masks.
  __syncthreads();
  float* stage = reinterpret_cast<float*>(smem) + warp * 256;
#pragma unroll
  for (int a = 0; a < 4; a++)
#pragma unroll
    for (int b = 0; b < 2; b++) {
      wmma::store_matrix_sync(stage, acc[a][b], 16, wmma::mem_row_major);
      __syncwarp();
#pragma unroll
      for (int e = 0; e < 8; e++) {
        const int idx = e * 32 + lane, r = idx / 16, c = idx % 16;
        const int gi = i0 + wm * 64 + a * 16 + r, gj = j0 + wn * 32 + b * 16 + c;
        if (gi < g.M && gj < g.N) {
          float v = g.alpha * stage[idx];
          if (g.bias && blockIdx.z == 0) v += g.bias[gj];
          float* dst = C + gi * g.ldc + gj;
          if (splits > 1) atomicAdd(dst, v);  // K slices meet here (C accumulates)
          else *dst = g.accumulate ? *dst + v : v;
        }
      }
      __syncwarp();
    }
}

// float32 SIMT kernel: 64x64 tile, BK = 16, 256 threads with 4x4 outputs each.
template <bool AK, bool BN>
__global__ void __launch_bounds__(256) gemm_f32_kernel(Gemm g) {
  constexpr int BM = 64, BN_ = 64, BK = 16;
  __shared__ float As[BK][BM + 4], Bs[BK][BN_ + 4];
  const int z = blockIdx.z;
  const float* A = g.A + batch_offset(g.ab, z);
  const float* B = g.B + batch_offset(g.bb, z);
  float* C = g.C + batch_offset(g.cb, z);
  const int i0 = blockIdx.y * BM, j0 = blockIdx.x * BN_, tid = threadIdx.x;
  const int tx = tid % 16, ty = tid / 16;
  float acc[4][4] = {};
  for (int k0 = 0; k0 < g.K; k0 += BK) {
#pragma unroll
    for (int e = 0; e < 4; e++) {
      const int lin = e * 256 + tid;
      int i, k;
      if (AK) i = lin / BK, k = lin % BK;
      else i = lin % BM, k = lin / BM;
      const int gi = i0 + i, gk = k0 + k;
      As[k][i] = (gi < g.M && gk < g.K) ? (AK ? A[gi * g.lda + gk] : A[gk * g.lda + gi]) : 0.f;
      int j;
      if (BN) k = lin / BN_, j = lin % BN_;
      else j = lin / BK, k = lin % BK;
      const int gj = j0 + j, gk2 = k0 + k;
      Bs[k][j] = (gj < g.N && gk2 < g.K) ? (BN ? B[gk2 * g.ldb + gj] : B[gj * g.ldb + gk2]) : 0.f;
    }
    __syncthreads();
#pragma unroll
    for (int k = 0; k < BK; k++) {
      float a[4], b[4];
#pragma unroll
      for (int r = 0; r < 4; r++) a[r] = As[k][ty + 16 * r], b[r] = Bs[k][tx + 16 * r];
#pragma unroll
      for (int r = 0; r < 4; r++)
#pragma unroll
        for (int c = 0; c < 4; c++) acc[r][c] = fmaf(a[r], b[c], acc[r][c]);
    }
    __syncthreads();
  }
#pragma unroll
  for (int r = 0; r < 4; r++)
#pragma unroll
    for (int c = 0; c < 4; c++) {
      const int gi = i0 + ty + 16 * r, gj = j0 + tx + 16 * c;
      if (gi < g.M && gj < g.N) {
        float v = g.alpha * acc[r][c];
        if (g.bias) v += g.bias[gj];
        float* dst = C + gi * g.ldc + gj;
        *dst = g.accumulate ? *dst + v : v;
      }
    }
}

bool multiple4(const BatchStride& b) { return b.outer % 4 == 0 && b.inner % 4 == 0; }

template <typename T, bool AK, bool BN>
void launch_bf16(const Gemm& g, const T* A, const T* B, dim3 grid, int splits, cudaStream_t stream) {
  // Vector loads of 4 elements need every row start of A and B (in every batch) aligned
  // to 4 elements.
  const int bytes = 4 * sizeof(T);
  const bool vec = aligned(A, bytes) && aligned(B, bytes) && g.lda % 4 == 0 && g.ldb % 4 == 0 &&
                   multiple4(g.ab) && multiple4(g.bb);
  // One block (8 warps, ~205 registers each) per SM: forcing two (128 registers, spills)
  // measured 0-35% slower on an H200 (bench/results/2026-11-27-gpu.md, "v1").
  if (vec) gemm_bf16_kernel<T, AK, BN, true, 1><<<grid, kThreads, 0, stream>>>(g, A, B, splits);
  else gemm_bf16_kernel<T, AK, BN, false, 1><<<grid, kThreads, 0, stream>>>(g, A, B, splits);
}

template <bool AK, bool BN>
void launch(const Gemm& g, MatmulPrecision prec, cudaStream_t stream) {
  if (prec == MatmulPrecision::BF16) {
    dim3 grid(ceil_div(g.N, kBN), ceil_div(g.M, kBM), g.batch);
    // Split-K when the output has too few tiles to fill the GPU (the weight gradients:
    // e.g. 768 x 768 is 36 tiles, summed over K = B*T = 8192 rows): slices of K go to
    // separate blocks that add into C atomically, so only when C accumulates anyway.
    int splits = 1;
    if (g.batch == 1 && g.accumulate) {
      int dev = 0, sms = 0;
      SCORE_CUDA_CHECK(cudaGetDevice(&dev));
      SCORE_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
      const long long tiles = static_cast<long long>(grid.x) * grid.y;
      if (tiles < 2LL * sms)
        splits = static_cast<int>(std::max(1LL, std::min<long long>((2LL * sms + tiles - 1) / tiles, g.K / 512)));
    }
    if (splits > 1) grid.z = splits;
    if (g.A16 && g.B16) launch_bf16<uint16_t, AK, BN>(g, g.A16, g.B16, grid, splits, stream);
    else launch_bf16<float, AK, BN>(g, g.A, g.B, grid, splits, stream);
  } else {
    dim3 grid(ceil_div(g.N, 64), ceil_div(g.M, 64), g.batch);
    gemm_f32_kernel<AK, BN><<<grid, 256, 0, stream>>>(g);
  }
  SCORE_CUDA_LAUNCH_CHECK();
}

}  // namespace

void gemm(const Gemm& g, MatmulPrecision prec, cudaStream_t stream) {
  SCORE_CHECK(g.M >= 0 && g.N >= 0 && g.K >= 0 && g.batch >= 1, Internal, "gemm: bad shape");
  SCORE_CHECK(g.M <= 65535 * kBM, Internal, "gemm: M too large for the grid");
  if (g.M == 0 || g.N == 0) return;
  const bool f32 = g.A && g.B, b16 = g.A16 && g.B16;
  SCORE_CHECK(prec == MatmulPrecision::BF16 ? f32 || b16 : f32, Internal,
              "gemm: operands missing (float32 A and B, or in bf16 precision their bf16 copies)");
  if (g.a_kcontig) {
    if (g.b_ncontig) launch<true, true>(g, prec, stream);
    else launch<true, false>(g, prec, stream);
  } else {
    if (g.b_ncontig) launch<false, true>(g, prec, stream);
    else launch<false, false>(g, prec, stream);
  }
}

}  // namespace score::cuda
