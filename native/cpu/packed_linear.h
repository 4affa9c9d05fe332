// A linear layer's weight packed once for many products with few rows: the decode
// steps of generation, where every step multiplies 1-64 rows by every weight matrix.
//
// Stored as the layer keeps it, W (OC, IC), each output is a dot product along a row of
// W, and the few-row kernel (gemm.cpp's small-M path) must reduce every accumulator
// horizontally and read W as four interleaved row streams. Packed as 16-column slivers
// of W^T, each (IC, 16) contiguous, the product is a stream of 64-byte vectors times
// broadcast inputs: no horizontal sums, one sequential stream per thread. That measured
// 1.7-1.9x faster on the `small` preset's decode products at 16 rows, whose weights
// stream from memory (bench/results/2026-11-27-cpu-session4.md). Packing costs one pass over the
// weights and a copy of their size, so generate() packs once per call.
#pragma once
#include <cstddef>
#include <vector>

namespace score::cpu {

// Up to this many rows the packed kernel beat sgemm on the unpacked weights (measured
// 1.9x at 16 rows, 1.15x at 512, on the `small` preset's layers); beyond, its unblocked
// re-reads of the input rows would cost more than sgemm's packing.
constexpr int kPackedLinearMaxRows = 512;

// Whether this CPU runs the packed kernels (AVX-512F); without it callers keep the
// weights as they are and use matmul_forward.
bool packed_linear_supported();

class PackedLinear {
 public:
  PackedLinear() = default;
  // Move-only: a copy's buffer would have another alignment than the offset assumes.
  PackedLinear(PackedLinear&&) noexcept = default;
  PackedLinear& operator=(PackedLinear&&) noexcept = default;
  PackedLinear(const PackedLinear&) = delete;
  PackedLinear& operator=(const PackedLinear&) = delete;

  // Bytes pack() allocates for a weight (OC, IC).
  static size_t bytes_for(int OC, int IC);
  // Packs weight (OC, IC), row-major (out = inp @ weight^T), replacing any earlier
  // contents. Requires packed_linear_supported().
  void pack(const float* weight, int OC, int IC);
  bool empty() const { return data_.empty(); }
  int out_features() const { return OC_; }
  int in_features() const { return IC_; }
  size_t bytes() const { return data_.capacity() * sizeof(float); }

  // out (N, OC) = inp (N, IC) @ weight^T [+ bias (OC)]; rows of inp and out contiguous.
  void forward(float* out, const float* inp, const float* bias, int N) const;

 private:
  // The slivers (ceil(OC / 16), IC, 16), columns past OC zero, start `offset_` floats into
  // data_, where they are 64-byte aligned.
  const float* slivers() const { return data_.data() + offset_; }
  int OC_ = 0, IC_ = 0;
  std::vector<float> data_;
  size_t offset_ = 0;
};

}  // namespace score::cpu
