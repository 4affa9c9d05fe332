// Column sums in the pass that produces the values: a bias gradient is the column sum of
// a layer's output gradient, and summing it where that gradient is written (GELU
// backward) or read anyway (its bf16 conversion) saves a pass over a (B*T, F) matrix.
//
// The walk: blocks of 256 threads = 32 lanes x 8 row walkers over 128 columns (4 per
// lane) and one slice of column_rows(N) rows (blockIdx.y); each walker adds its rows
// n0 + y, n0 + y + 8, ... in order, the 8 walkers' sums meet in shared memory (walker 0's
// first), the slices' in float atomics. So a column's sum is the same set of terms in
// the same order within a slice; across slices the order varies from run to run when
// N > 256.
#pragma once
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstdint>

namespace score::cuda {

constexpr int kColumnThreads = 256;
// Rows per slice: 256, more only where that would need over 65535 slices (grid y limit).
inline int column_rows(int N) { return std::max(256, (N + 65534) / 65535); }
inline dim3 column_grid(int N, int F) {
  const int rows = column_rows(N);
  return dim3((F + 127) / 128, (N + rows - 1) / rows);
}

// In a kernel launched on column_grid(N, F) with kColumnThreads threads: op(at, cnt)
// handles the cnt (4, or fewer at the last columns) consecutive elements of row n from
// column c on (at = n * ld + c) and returns their values (zeros past cnt), whose column
// sums are added into colsum (nullable). part: the kernel's __shared__ float4 [8][32].
template <typename Op>
__device__ __forceinline__ void walk_columns(float4 (&part)[8][32], int N, int F, int64_t ld,
                                             int rows, float* colsum, Op&& op) {
  const int lane = threadIdx.x % 32, y = threadIdx.x / 32;
  const int c = (blockIdx.x * 32 + lane) * 4;
  const int n0 = blockIdx.y * rows, n1 = min(N, n0 + rows);
  float4 sum = make_float4(0.f, 0.f, 0.f, 0.f);
  if (c < F)
    for (int n = n0 + y; n < n1; n += 8) {
      const float4 v = op(static_cast<int64_t>(n) * ld + c, min(4, F - c));
      sum.x += v.x, sum.y += v.y, sum.z += v.z, sum.w += v.w;
    }
  if (!colsum) return;
  part[y][lane] = sum;
  __syncthreads();
  if (y != 0 || c >= F) return;
  for (int k = 1; k < 8; k++) {
    const float4 p = part[k][lane];
    sum.x += p.x, sum.y += p.y, sum.z += p.z, sum.w += p.w;
  }
  const float t[4] = {sum.x, sum.y, sum.z, sum.w};
  for (int e = 0; e < 4 && c + e < F; e++) {
    if (gridDim.y == 1)
      colsum[c + e] += t[e];
    else
      atomicAdd(colsum + c + e, t[e]);
  }
}

}  // namespace score::cuda
