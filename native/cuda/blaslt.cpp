// cuBLASLt for the unbatched products (the linear layers and the lm_head), built only
// when CMake found cuBLASLt in the toolkit (SCORE_HAVE_CUBLASLT); otherwise create()
// returns nullptr and every product runs on our kernel (gemm.cu).
//
// Row-major to column-major: our C (M, N) row-major is C^T (N, M) column-major, and
// C^T = B^T A^T. Our B as stored is, read column-major, B^T (N, K) when contiguous along
// n, or B (K, N) to be transposed; our A is A^T (K, M) when contiguous along k, or
// A (M, K) to be transposed. So cuBLASLt's "A" is our B and its "B" is our A.
//
// Plans (matmul descriptor, three layouts, the heuristic's algorithm) are cached per
// (shape, strides, layouts, pointer alignment): a training step reuses a dozen shapes.
#include "cuda/common.h"
#include "cuda/kernels.h"

#ifdef SCORE_HAVE_CUBLASLT
#include <cublasLt.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <string>
#include <tuple>

namespace score::cuda {
namespace {

#define SCORE_LT_CHECK(call)                                                              \
  do {                                                                                    \
    cublasStatus_t st_ = (call);                                                          \
    if (st_ != CUBLAS_STATUS_SUCCESS)                                                     \
      throw Error(ErrorCode::Device, std::string("cuBLASLt: ") + #call + " failed with status " + \
                                         std::to_string(static_cast<int>(st_)));          \
  } while (0)

constexpr size_t kWorkspace = size_t(32) << 20;

uint32_t alignment(const void* p) {
  uint32_t a = 256;
  while (a > 4 && reinterpret_cast<uintptr_t>(p) % a != 0) a /= 2;
  return a;
}

class LtImpl final : public LtMatmul {
 public:
  LtImpl() {
    SCORE_LT_CHECK(cublasLtCreate(&handle_));
    workspace_.ensure(kWorkspace);
  }
  ~LtImpl() override {
    for (auto& kv : plans_) {
      Plan& p = kv.second;
      if (p.x) cublasLtMatrixLayoutDestroy(p.x);
      if (p.y) cublasLtMatrixLayoutDestroy(p.y);
      if (p.c) cublasLtMatrixLayoutDestroy(p.c);
      if (p.desc) cublasLtMatmulDescDestroy(p.desc);
    }
    if (handle_) cublasLtDestroy(handle_);
  }

  bool run(const Gemm& g, cudaStream_t stream) override {
    if (g.batch != 1 || g.M == 0 || g.N == 0 || g.K == 0) return false;
    // A bias is added in cuBLASLt's epilogue (one pass less over the output) when C is
    // overwritten and the bias is 16-byte aligned; otherwise the caller adds it.
    if (g.bias && (g.accumulate || alignment(g.bias) < 16)) return false;
    // cuBLASLt reads and writes an operand in vectors only when the operand's contiguous
    // extent is a multiple of the vector; otherwise it picks element-wise kernels. At the
    // lm_head (V = 50257 columns) those were align-1 TF32 and plain-FMA kernels, 22 ms of
    // an 88 ms gpt2 training step (CUPTI profile, H200). So the last extent % 8 columns
    // (N: contiguous in C), depth (K: contiguous in A or B) or rows (M: contiguous in A)
    // are split off and run on our kernel; the bulk stays here. The bulk runs first, and
    // only where it does is the rest run: a false return has done nothing.
    constexpr int kVec = 8;
    const bool k_contig = g.a_kcontig || !g.b_ncontig, m_contig = !g.a_kcontig;
    if (g.N % kVec && g.N > kVec) {
      const int n0 = g.N - g.N % kVec;
      Gemm bulk = g, rest = g;
      bulk.N = n0;
      rest.N = g.N - n0;
      shift_b(rest, g.b_ncontig ? n0 : n0 * g.ldb);
      rest.C = g.C + n0;
      if (g.bias) rest.bias = g.bias + n0;
      return run_split(bulk, rest, stream);
    }
    if (k_contig && g.K % kVec && g.K > kVec) {
      const int k0 = g.K - g.K % kVec;
      Gemm bulk = g, rest = g;
      bulk.K = k0;
      rest.K = g.K - k0;
      shift_a(rest, g.a_kcontig ? k0 : k0 * g.lda);
      shift_b(rest, g.b_ncontig ? k0 * g.ldb : k0);
      rest.accumulate = true;  // onto the bulk's result, which has the bias
      rest.bias = nullptr;
      return run_split(bulk, rest, stream);
    }
    if (m_contig && g.M % kVec && g.M > kVec) {
      const int m0 = g.M - g.M % kVec;
      Gemm bulk = g, rest = g;
      bulk.M = m0;
      rest.M = g.M - m0;
      shift_a(rest, m0);  // A is (K, M) as stored here: rows m0.. are columns m0..
      rest.C = g.C + m0 * g.ldc;
      return run_split(bulk, rest, stream);
    }
    const bool bf = g.A16 && g.B16;
    if (!bf && !(g.A && g.B)) return false;  // gemm() reports the missing operand
    const void* a = bf ? static_cast<const void*>(g.A16) : g.A;
    const void* b = bf ? static_cast<const void*>(g.B16) : g.B;
    const uint32_t al = std::min(std::min(alignment(a), alignment(b)), alignment(g.C));
    const bool bias = g.bias != nullptr;
    const Key key{g.M, g.N, g.K, g.lda, g.ldb, g.ldc, g.a_kcontig, g.b_ncontig, al, bf, bias};
    auto it = plans_.find(key);
    if (it == plans_.end()) it = plans_.emplace(key, make_plan(g, al, bf, bias)).first;
    Plan& p = it->second;
    if (!p.ok) return false;
    if (bias)
      SCORE_LT_CHECK(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &g.bias,
                                                    sizeof g.bias));
    const float alpha = g.alpha, beta = g.accumulate ? 1.0f : 0.0f;
    const cublasStatus_t st = cublasLtMatmul(handle_, p.desc, &alpha, b, p.x, a, p.y, &beta, g.C, p.c,
                                             g.C, p.c, &p.algo, workspace_.get(), kWorkspace, stream);
    if (st != CUBLAS_STATUS_SUCCESS && bias) {
      // Refused before any work is enqueued: this shape adds its bias separately from now on.
      p.ok = false;
      return false;
    }
    SCORE_LT_CHECK(st);
    return true;
  }

  uint16_t* bf16_scratch(int slot, size_t n) override { return scratch_[slot].ensure(n); }

 private:
  // The rest of a split starts `off` elements into A (B), in the float32 operand and its
  // bf16 copy alike (same element order and strides); a null operand stays null.
  static void shift_a(Gemm& g, int64_t off) {
    if (g.A) g.A += off;
    if (g.A16) g.A16 += off;
  }
  static void shift_b(Gemm& g, int64_t off) {
    if (g.B) g.B += off;
    if (g.B16) g.B16 += off;
  }
  // The bulk here, then the rest on our kernel; false, with nothing done, where the bulk
  // is refused.
  bool run_split(const Gemm& bulk, const Gemm& rest, cudaStream_t stream) {
    if (!run(bulk, stream)) return false;
    gemm(rest, MatmulPrecision::BF16, stream);
    return true;
  }

  using Key = std::tuple<int, int, int, int64_t, int64_t, int64_t, bool, bool, uint32_t, bool, bool>;
  struct Plan {
    cublasLtMatmulDesc_t desc = nullptr;
    cublasLtMatrixLayout_t x = nullptr, y = nullptr, c = nullptr;
    cublasLtMatmulAlgo_t algo{};
    bool ok = false;
  };

  // bf: A and B are bf16 in memory (plain float32 compute); else float32, which cuBLASLt
  // may round to bf16 itself (FAST_16BF).
  // bias: the epilogue adds a float32 bias over the columns of our C (the rows of
  // cuBLASLt's column-major D).
  Plan make_plan(const Gemm& g, uint32_t al, bool bf, bool bias) {
    Plan p;
    const cudaDataType_t ab = bf ? CUDA_R_16BF : CUDA_R_32F;
    SCORE_LT_CHECK(cublasLtMatmulDescCreate(&p.desc, bf ? CUBLAS_COMPUTE_32F : CUBLAS_COMPUTE_32F_FAST_16BF,
                                            CUDA_R_32F));
    if (bias) {
      const cublasLtEpilogue_t ep = CUBLASLT_EPILOGUE_BIAS;
      const cudaDataType_t bt = CUDA_R_32F;
      SCORE_LT_CHECK(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &ep, sizeof ep));
      SCORE_LT_CHECK(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bt, sizeof bt));
    }
    const cublasOperation_t opx = g.b_ncontig ? CUBLAS_OP_N : CUBLAS_OP_T;
    const cublasOperation_t opy = g.a_kcontig ? CUBLAS_OP_N : CUBLAS_OP_T;
    SCORE_LT_CHECK(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_TRANSA, &opx, sizeof opx));
    SCORE_LT_CHECK(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_TRANSB, &opy, sizeof opy));
    // Layouts as stored (rows, cols, leading dimension), column-major.
    SCORE_LT_CHECK(cublasLtMatrixLayoutCreate(&p.x, ab, g.b_ncontig ? g.N : g.K,
                                              g.b_ncontig ? g.K : g.N, g.ldb));
    SCORE_LT_CHECK(cublasLtMatrixLayoutCreate(&p.y, ab, g.a_kcontig ? g.K : g.M,
                                              g.a_kcontig ? g.M : g.K, g.lda));
    SCORE_LT_CHECK(cublasLtMatrixLayoutCreate(&p.c, CUDA_R_32F, g.N, g.M, g.ldc));
    cublasLtMatmulPreference_t pref = nullptr;
    SCORE_LT_CHECK(cublasLtMatmulPreferenceCreate(&pref));
    size_t ws = kWorkspace;
    cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws);
    // Parameter tensors sit at arbitrary float offsets of one buffer: promise only the
    // alignment the pointers have.
    cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &al, sizeof al);
    cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &al, sizeof al);
    cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &al, sizeof al);
    cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &al, sizeof al);
    cublasLtMatmulHeuristicResult_t res{};
    int found = 0;
    const cublasStatus_t st = cublasLtMatmulAlgoGetHeuristic(handle_, p.desc, p.x, p.y, p.c, p.c,
                                                             pref, 1, &res, &found);
    cublasLtMatmulPreferenceDestroy(pref);
    if (st == CUBLAS_STATUS_SUCCESS && found > 0) {
      p.algo = res.algo;
      p.ok = true;  // otherwise this shape stays on our kernel
    }
    return p;
  }

  cublasLtHandle_t handle_ = nullptr;
  DeviceBuffer<unsigned char> workspace_;
  DeviceBuffer<uint16_t> scratch_[2];
  std::map<Key, Plan> plans_;
};

}  // namespace

std::unique_ptr<LtMatmul> LtMatmul::create() { return std::make_unique<LtImpl>(); }
bool LtMatmul::available() { return true; }

}  // namespace score::cuda

#else  // built without cuBLASLt

namespace score::cuda {
std::unique_ptr<LtMatmul> LtMatmul::create() { return nullptr; }
bool LtMatmul::available() { return false; }
}  // namespace score::cuda

#endif
