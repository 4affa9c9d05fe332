// CUDA kernels of the backend: one file per layer (native/cuda/<layer>.cu), the
// device twins of native/cpu/kernels.h with the same argument order and the same
// conventions (row-major, N = B*T rows, forward overwrites, backward ADDS into
// every gradient, nullable gradients). Every pointer is a device pointer and every
// launcher enqueues on `stream` and checks the launch (score::Error on failure).
//
// Precision: activations, gradients and parameters are float32 in device memory;
// the matrix products read their inputs as bf16 (rounded while staging tiles into
// shared memory) and accumulate in float32 on the tensor cores. A backend created
// with fp32 matmuls uses a float32 SIMT GEMM instead (the verification path).
#pragma once
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

namespace score::cuda {

// ---- gemm.cu: C (M, N) = alpha * A (M, K) B (K, N) [+ C] [+ bias (N)], batched ----
// The operand of batch z starts at base + (z / n_inner) * outer + ((z % n_inner) / group) * inner:
// this covers (batch, head) loops including grouped-query heads (group = H / KVH).
struct BatchStride {
  int64_t outer = 0, inner = 0;
  int n_inner = 1, group = 1;
};
struct Gemm {
  // A element (i, k) is A[i*lda + k] when a_kcontig, else A[k*lda + i].
  const float* A = nullptr;
  int64_t lda = 0;
  bool a_kcontig = true;
  BatchStride ab;
  // B element (k, j) is B[k*ldb + j] when b_ncontig, else B[j*ldb + k].
  const float* B = nullptr;
  int64_t ldb = 0;
  bool b_ncontig = true;
  BatchStride bb;
  float* C = nullptr;  // C element (i, j) is C[i*ldc + j]
  int64_t ldc = 0;
  BatchStride cb;
  const float* bias = nullptr;  // (N), nullable
  // bf16 copies of A and B (same element order and strides), or null. When both are set,
  // cuBLASLt and our bf16 kernel read them instead of A and B (bf16 operands from memory:
  // half the bytes), and A and B may be null.
  const uint16_t* A16 = nullptr;
  const uint16_t* B16 = nullptr;
  int M = 0, N = 0, K = 0, batch = 1;
  float alpha = 1.0f;
  bool accumulate = false;  // C += product instead of C = product
};
enum class MatmulPrecision { BF16, FP32 };
void gemm(const Gemm& g, MatmulPrecision prec, cudaStream_t stream);

// ---- blaslt.cpp: cuBLASLt for unbatched products, when the toolkit had it at build time ----
// One per model (handle, workspace, and descriptors + algorithm cached per shape and
// alignment). With A16 and B16 the operands are bf16 in memory (rounded to nearest even by
// to_bf16), multiplied with float32 accumulation (CUBLAS_COMPUTE_32F): the contract of our
// kernel. Without them the operands are float32 and the compute type
// CUBLAS_COMPUTE_32F_FAST_16BF lets cuBLASLt round them itself.
class LtMatmul {
 public:
  static std::unique_ptr<LtMatmul> create();  // nullptr when built without cuBLASLt
  static bool available();                    // built with cuBLASLt
  virtual ~LtMatmul() = default;
  // Runs g (batch 1; a bias only where C is overwritten) and returns true, or returns
  // false having done nothing (the caller then adds the bias itself or runs gemm()).
  virtual bool run(const Gemm& g, cudaStream_t stream) = 0;
  // Device scratch of at least n bf16 values for the converted operands of one product
  // (slots 0 and 1); valid until the next call with the same slot.
  virtual uint16_t* bf16_scratch(int slot, size_t n) = 0;
};

// ---- matmul.cu: a linear layer, weight (OC, IC) (cpu: matmul_forward / matmul_backward) ----
// With `lt` (and bf16 precision) the products go to cuBLASLt, else to gemm(). `ldo` is
// the row stride of out / dout (0: OC); the classifier pads it to a multiple of 64 so
// that every row of its (m, V = 50257) logits starts aligned for vector loads.
// `weight16` (bf16 precision): the weight's bf16 copy (to_bf16, or AdamW's); with it the
// products read bf16 operands: `inp16` / `dout16`, the copies made by their producers
// (inp / dout may then be null), or else, with `lt`, copies converted here. Without `lt`
// and without given copies, our kernel reads float32 and rounds as it stages (the same
// products). `dinp_overwrite`: dinp = the product instead of dinp += (saves the caller
// zeroing it, and the GEMM reading it).
void matmul_forward(float* out, const float* inp, const float* weight, const float* bias, int N,
                    int IC, int OC, MatmulPrecision prec, cudaStream_t stream,
                    LtMatmul* lt = nullptr, int ldo = 0, const uint16_t* weight16 = nullptr,
                    const uint16_t* inp16 = nullptr);
void matmul_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                     const float* weight, int N, int IC, int OC, MatmulPrecision prec,
                     cudaStream_t stream, LtMatmul* lt = nullptr, int ldo = 0,
                     const uint16_t* weight16 = nullptr, const uint16_t* inp16 = nullptr,
                     bool dinp_overwrite = false, const uint16_t* dout16 = nullptr);
// dst (rows, cols; row stride ld) = src rounded to bf16 (nearest even; bit patterns), the
// columns past cols untouched; with colsum (cols), src's column sums are added into it in
// the same pass (a bias gradient from the output gradient being converted).
void to_bf16(uint16_t* dst, const float* src, int64_t rows, int64_t cols, int64_t ld,
             cudaStream_t stream, float* colsum = nullptr);

// ---- embedding.cu ----
void embedding_forward(float* out, const int32_t* tokens, const int32_t* pos, const float* wte,
                       const float* wpe, int N, int C, cudaStream_t stream);
void embedding_backward(float* dwte, float* dwpe, const float* dout, const int32_t* tokens,
                        const int32_t* pos, int N, int C, cudaStream_t stream);

// ---- layernorm.cu / rmsnorm.cu ----
// Producers of a product's operand also write its bf16 copy (nearest even; the bits
// to_bf16 gives) where given: `out16` next to, or instead of (out null), out; `dinp16`
// of dinp after the += (the next product's dout). Forward with `residual`: inp +=
// residual first, in place (the residual stream's add, in the same pass); inp is written
// only then.
void layernorm_forward(float* out, float* mean, float* rstd, float* inp, const float* w,
                       const float* b, int N, int C, double eps, cudaStream_t stream,
                       uint16_t* out16 = nullptr, const float* residual = nullptr);
void layernorm_backward(float* dinp, float* dw, float* db, const float* dout, const float* inp,
                        const float* w, const float* mean, const float* rstd, int N, int C,
                        cudaStream_t stream, uint16_t* dinp16 = nullptr);
void rmsnorm_forward(float* out, float* rstd, float* inp, const float* w, int N, int C,
                     double eps, cudaStream_t stream, uint16_t* out16 = nullptr,
                     const float* residual = nullptr);
void rmsnorm_backward(float* dinp, float* dw, const float* dout, const float* inp, const float* w,
                      const float* rstd, int N, int C, cudaStream_t stream,
                      uint16_t* dinp16 = nullptr);

// ---- rope.cu: tables (maxT, hd/2) come from cpu::rope_tables (bit-identical angles) ----
void rope_forward(float* qkv, const int32_t* pos, const float* cos, const float* sin, int N,
                  int QKV, int H, int KVH, int hd, cudaStream_t stream);
void rope_backward(float* dqkv, const int32_t* pos, const float* cos, const float* sin, int N,
                   int QKV, int H, int KVH, int hd, cudaStream_t stream);

// ---- attention.cu: causal GQA attention, materialising (B, H, T, T) probabilities ----
// dscratch (B, H, T, T) is backward workspace.
void attention_forward(float* out, float* att, const float* qkv, int B, int T, int H, int KVH,
                       int hd, MatmulPrecision prec, cudaStream_t stream);
void attention_backward(float* dqkv, float* dscratch, const float* dout, const float* qkv,
                        const float* att, int B, int T, int H, int KVH, int hd,
                        MatmulPrecision prec, cudaStream_t stream);

// ---- attention_cached.cu: rows against a KV cache (slots, KVH, len, hd) ----
// The cache in float32, or in bf16 (uint16_t bits; kv_store rounds to nearest even).
// out (nullable) and / or out16, its bf16 copy (the projection's operand).
void kv_store(float* kcache, float* vcache, const float* qkv, const int32_t* slot,
              const int32_t* pos, int N, int QKV, int H, int KVH, int hd, int len,
              cudaStream_t stream);
void kv_store(uint16_t* kcache, uint16_t* vcache, const float* qkv, const int32_t* slot,
              const int32_t* pos, int N, int QKV, int H, int KVH, int hd, int len,
              cudaStream_t stream);
void attention_cached_forward(float* out, const float* qkv, const float* kcache,
                              const float* vcache, const int32_t* slot, const int32_t* pos, int N,
                              int QKV, int H, int KVH, int hd, int len, cudaStream_t stream,
                              uint16_t* out16 = nullptr);
void attention_cached_forward(float* out, const float* qkv, const uint16_t* kcache,
                              const uint16_t* vcache, const int32_t* slot, const int32_t* pos, int N,
                              int QKV, int H, int KVH, int hd, int len, cudaStream_t stream,
                              uint16_t* out16 = nullptr);

// ---- activations.cu: GELU-tanh, SwiGLU, residual add ----
// out16 / dinp16 as for the norms (out / dinp may be null where the copy is given).
// Unlike their CPU twins, the backward passes OVERWRITE dinp (nothing else adds into it:
// no zeroing pass before them). GELU backward runs over (N, F) rows and adds the column
// sums of dinp into dbias (F, nullable): the bias gradient of the layer before the GELU.
void gelu_forward(float* out, const float* inp, size_t n, cudaStream_t stream,
                  uint16_t* out16 = nullptr);
void gelu_backward(float* dinp, const float* inp, const float* dout, int N, int F,
                   cudaStream_t stream, uint16_t* dinp16 = nullptr, float* dbias = nullptr);
void swiglu_forward(float* out, const float* inp, int N, int Fd, cudaStream_t stream,
                    uint16_t* out16 = nullptr);
void swiglu_backward(float* dinp, const float* inp, const float* dout, int N, int Fd,
                     cudaStream_t stream, uint16_t* dinp16 = nullptr);
void add_inplace(float* y, const float* x, size_t n, cudaStream_t stream);  // y += x

// ---- classifier.cu: per-row log-softmax statistics and the fused loss gradient ----
// The per-token loss of score/token_loss.h, evaluated on the device. Arrays are
// indexed by a row's loss slot (nullable as in TokenLoss).
struct DeviceTokenLoss {
  bool rl = false;
  const float *weight = nullptr, *w_pg = nullptr, *adv = nullptr, *w_kl = nullptr,
              *ref_logp = nullptr, *old_logp = nullptr;
  bool k3 = false;
  double clip_eps = 0, inv_norm = 1;
};
// Per-row outputs of one classifier chunk (m rows); each nullable.
struct ClassifierRowOut {
  float* logp = nullptr;     // (m)
  float* entropy = nullptr;  // (m)
  // With a loss: per-row weighted terms for the statistics (double for the sums).
  double* pg = nullptr;      // weight * pg
  double* kl = nullptr;      // weight * w_kl * KL
  double* kl_raw = nullptr;  // weight * KL
  double* clipped = nullptr; // weight if clipped
  // With a loss, optional: dlogits in bf16 (nearest even) at the same row stride, the
  // operand of the lm_head's backward products, INSTEAD of over the logits (which are then
  // left as they were: nothing reads float32 dlogits).
  uint16_t* dlogits16 = nullptr;
};
// logits (m, ld), V <= ld valid columns, in place: statistics per row, then (with loss)
// dlogits = g (onehot - softmax) where g = weight * dloss/dlogp * inv_norm, over the
// logits or into dlogits16; target (m), slot (m) loss index per row. Columns V..ld-1 are
// neither read nor written.
void classifier_rows(float* logits, int64_t ld, const int32_t* target, const int32_t* slot, int m,
                     int V, const DeviceTokenLoss* loss, const ClassifierRowOut& out,
                     cudaStream_t stream);
// Row gather / scatter-add between (N, C) and a (m, C) chunk; the gather also into bf16
// (nearest even). The scatter's rows must be distinct (plain adds, no atomics), as the
// backend's target rows are.
void gather_rows(float* dst, const float* src, const int32_t* rows, int m, int C,
                 cudaStream_t stream);
void gather_rows(uint16_t* dst, const float* src, const int32_t* rows, int m, int C,
                 cudaStream_t stream);
void scatter_add_rows(float* dst, const float* src, const int32_t* rows, int m, int C,
                      cudaStream_t stream);

// ---- sampling.cu: greedy decoding on the device ----
// token = argmax (lowest index on ties), logp = log_softmax[token]; logits (m, V).
void greedy_rows(int32_t* token, float* logp, const float* logits, int m, int V,
                 cudaStream_t stream);

// ---- adamw.cu ----
// *out (one double on the device) += sum of squares of x (n).
void sum_squares(double* out, const float* x, size_t n, cudaStream_t stream);
// AdamW over every tensor of the flat buffers in one launch: one block per chunk, a piece
// of at most kAdamWChunk elements of one tensor. The chunks of a layout are made once
// (adamw_chunks) and kept on the device.
struct AdamWTensor {
  size_t offset, numel;
  bool decay;  // weight decay applies
};
struct AdamWChunk {
  size_t offset;
  uint32_t n, decay;
};
constexpr size_t kAdamWChunk = 16384;
std::vector<AdamWChunk> adamw_chunks(const std::vector<AdamWTensor>& tensors);
struct AdamWHyper {
  float lr, beta1, beta2, eps, weight_decay;
  double max_grad_norm;  // <= 0: no clipping
  int t;                 // the step count after this step (bias corrections)
};
// sumsq: the gradients' sum of squares on the device (sum_squares), read by the kernel so
// the host need not wait for it. Non-finite: nothing is written (a poisoned step). Over
// max_grad_norm^2: the gradients are scaled by max_grad_norm / (norm + 1e-6), as on the
// CPU. params16 (nullable): the updated parameters also in bf16 (nearest even), the copy
// the products read (no separate conversion after the step).
void adamw_update(const AdamWChunk* chunks, int nchunks, float* params, const float* grads,
                  float* m, float* v, uint16_t* params16, const double* sumsq,
                  const AdamWHyper& h, cudaStream_t stream);

}  // namespace score::cuda
