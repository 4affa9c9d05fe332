// CUDA kernels against their CPU twins (native/cpu/*) on fresh random inputs
// (the seed is printed). Skipped, with the reason printed, when the build has no
// CUDA backend or the machine no usable GPU. Tolerances are written at each check:
//  - float32 paths: the same formula in float on both sides, different summation
//    order (warp trees, atomics) => |err| <= 1e-5 abs + 1e-4 rel, looser only where
//    a sum of many terms is compared (stated there);
//  - bf16 GEMM: inputs rounded to bf16 (8 significant bits: relative error <= 2^-8
//    each, so a product term errs by <= 2^-7 |a||b|), float32 accumulation => against
//    float32 on unrounded inputs |err| <= 2^-7 sum_k |a_ik b_kj| (+ accumulation slack);
//    against the host product of the same bf16-rounded inputs it is a float32 comparison.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <vector>

#include "check.h"

#ifndef SCORE_HAVE_CUDA
int main() {
  std::printf("skipped: this build has no CUDA backend (nvcc not found or SCORE_CUDA=off)\n");
  return 0;
}
#else
#include <cuda_runtime_api.h>

#include <array>

#include <algorithm>
#include <cmath>

#include "cpu/kernels.h"
#include "cpu/sampling.h"
#include "cuda/attention_flash.h"
#include "cuda/kernels.h"
#include "cuda/sampling.h"
#include "score/errors.h"
#include "score/rng.h"
#include "score/token_loss.h"

using namespace score;
namespace cu = score::cuda;

namespace {

uint64_t g_seed = 0;
// A test that cannot run here (a missing optional library) sets the reason and returns.
const char* g_skip = nullptr;

template <typename T>
struct Dev {
  T* p = nullptr;
  size_t n = 0;
  explicit Dev(size_t n_) : n(n_) {
    if (cudaMalloc(reinterpret_cast<void**>(&p), std::max<size_t>(n, 1) * sizeof(T)) != cudaSuccess)
      throw Error(ErrorCode::Device, "cudaMalloc failed in the test");
  }
  explicit Dev(const std::vector<T>& h) : Dev(h.size()) { up(h); }
  ~Dev() { cudaFree(p); }
  void up(const std::vector<T>& h) { cudaMemcpy(p, h.data(), n * sizeof(T), cudaMemcpyHostToDevice); }
  std::vector<T> down() const {
    std::vector<T> h(n);
    cudaDeviceSynchronize();
    cudaMemcpy(h.data(), p, n * sizeof(T), cudaMemcpyDeviceToHost);
    return h;
  }
};

std::vector<float> randn(size_t n, Rng& rng, double s = 1.0) {
  std::vector<float> v(n);
  for (auto& x : v) x = static_cast<float>(s * rng.normal());
  return v;
}
std::vector<int32_t> randint(size_t n, int hi, Rng& rng) {
  std::vector<int32_t> v(n);
  for (auto& x : v) x = static_cast<int32_t>(rng.next_u64() % hi);
  return v;
}
float bf16_round(float x) {  // round to nearest even, as __float2bfloat16
  uint32_t u;
  std::memcpy(&u, &x, 4);
  u += 0x7fff + ((u >> 16) & 1);
  u &= 0xffff0000u;
  std::memcpy(&x, &u, 4);
  return x;
}
std::vector<float> rounded(const std::vector<float>& v) {
  std::vector<float> r(v);
  for (auto& x : r) x = bf16_round(x);
  return r;
}

// bf16 bit patterns (nearest even) of v, and back to floats (exact).
std::vector<uint16_t> bf16_bits_of(const std::vector<float>& v) {
  std::vector<uint16_t> b(v.size());
  for (size_t i = 0; i < v.size(); i++) {
    const float r = bf16_round(v[i]);
    uint32_t u;
    std::memcpy(&u, &r, 4);
    b[i] = static_cast<uint16_t>(u >> 16);
  }
  return b;
}
std::vector<float> floats_of(const std::vector<uint16_t>& b) {
  std::vector<float> v(b.size());
  for (size_t i = 0; i < b.size(); i++) {
    const uint32_t u = uint32_t(b[i]) << 16;
    std::memcpy(&v[i], &u, 4);
  }
  return v;
}

// max over i of |a - b| / (atol + rtol |b|): <= 1 passes.
double worst(const std::vector<float>& a, const std::vector<float>& b, double atol, double rtol) {
  double w = 0;
  for (size_t i = 0; i < a.size(); i++) {
    const double d = std::fabs(double(a[i]) - b[i]);
    const double e = d == 0 ? 0.0 : d / (atol + rtol * std::fabs(double(b[i])));  // exact: 0
    if (!(e <= w)) w = std::isnan(e) ? 1e30 : e;
  }
  return w;
}
#define CHECK_ALL(a, b, atol, rtol)                                                          \
  do {                                                                                       \
    const double w_ = worst((a), (b), (atol), (rtol));                                       \
    if (!(w_ <= 1.0)) {                                                                      \
      std::fprintf(stderr, "  %s:%d: %s vs %s: worst error %.3g x tolerance\n", __FILE__,    \
                   __LINE__, #a, #b, w_);                                                    \
      score_test::failures()++;                                                              \
    }                                                                                        \
  } while (0)

// max over i of |a - b| / bound: <= 1 passes.
double worst_bound(const std::vector<float>& a, const std::vector<float>& b, const std::vector<float>& bound) {
  double w = 0;
  for (size_t i = 0; i < a.size(); i++) {
    const double e = std::fabs(double(a[i]) - b[i]) / bound[i];
    if (!(e <= w)) w = std::isnan(e) ? 1e30 : e;
  }
  return w;
}
#define CHECK_BOUND(a, b, bound)                                                             \
  do {                                                                                       \
    const double w_ = worst_bound((a), (b), (bound));                                        \
    if (!(w_ <= 1.0)) {                                                                      \
      std::fprintf(stderr, "  %s:%d: %s vs %s: worst error %.3g x bound\n", __FILE__,        \
                   __LINE__, #a, #b, w_);                                                    \
      score_test::failures()++;                                                              \
    }                                                                                        \
  } while (0)
std::vector<float> abs_of(const std::vector<float>& v) {
  std::vector<float> r(v);
  for (auto& x : r) x = std::fabs(x);
  return r;
}
// The bf16 bound of the header, 2^-7 sum_k |a_ik b_kj|, from the product of the absolute
// values s; 1% and 1e-5 more for the float32 accumulation and the bias add. (A product
// of K = 1 reached 0.85 of it, on our kernel and on cuBLASLt alike.)
std::vector<float> bf16_bound(const std::vector<float>& s) {
  std::vector<float> b(s);
  for (auto& x : b) x = x / 128.0f * 1.01f + 1e-5f;
  return b;
}

// (rows, cols) at row stride ld, the padding NaN; and back, counting padding that changed.
std::vector<float> pad_rows(const std::vector<float>& v, int rows, int cols, int ld) {
  std::vector<float> p(size_t(rows) * ld, std::nanf(""));
  for (int r = 0; r < rows; r++) std::copy_n(v.data() + size_t(r) * cols, cols, p.data() + size_t(r) * ld);
  return p;
}
std::vector<float> unpad_rows(const std::vector<float>& p, int rows, int cols, int ld, int* changed) {
  std::vector<float> v(size_t(rows) * cols);
  for (int r = 0; r < rows; r++) {
    std::copy_n(p.data() + size_t(r) * ld, cols, v.data() + size_t(r) * cols);
    for (int c = cols; c < ld; c++) *changed += !std::isnan(p[size_t(r) * ld + c]);
  }
  return v;
}

// A linear layer in all three forms on shapes that are not multiples of the tile; with
// `padded`, out and dout have a row stride rounded up to 64 (as the classifier's logits),
// NaN in the padding, which must be neither read nor written. With `lt` the products run
// on cuBLASLt (bf16). With `given16` (bf16, as the backend's producers do) the products
// get the bf16 copies of the input and the output gradient, and no float32 input at all.
void check_linear(cu::MatmulPrecision prec, bool padded, cu::LtMatmul* lt = nullptr,
                  bool given16 = false) {
  Rng rng(g_seed + 1);
  // {1000, 64, 40}: the weight gradient has one tile and K = 1000, so it is split over K;
  // the bias gradient sums 4 row slices.
  for (auto [N, IC, OC] : {std::array<int, 3>{67, 95, 133}, {130, 64, 257}, {1, 300, 17}, {1000, 64, 40}}) {
    const int ldo = padded ? (OC + 63) / 64 * 64 : OC;
    const auto x = randn(size_t(N) * IC, rng), w = randn(size_t(OC) * IC, rng), b = randn(OC, rng);
    const auto dout = randn(size_t(N) * OC, rng);
    const bool bf = prec == cu::MatmulPrecision::BF16;
    // Reference on the inputs the kernel actually multiplies (bf16-rounded in bf16 mode).
    const auto xr = bf ? rounded(x) : x, wr = bf ? rounded(w) : w, dr = bf ? rounded(dout) : dout;
    std::vector<float> out(size_t(N) * OC), dx(size_t(N) * IC, 0.f), dw(size_t(OC) * IC, 0.f),
        db(OC, 0.f);
    cpu::matmul_forward<float>(out.data(), xr.data(), wr.data(), b.data(), N, IC, OC);
    cpu::matmul_backward<float>(dx.data(), dw.data(), nullptr, dr.data(), xr.data(), wr.data(), N, IC, OC);
    cpu::matmul_backward<float>(nullptr, nullptr, db.data(), dout.data(), x.data(), w.data(), N, IC, OC);
    // out starts as NaN everywhere: the product must overwrite every valid element.
    Dev<float> dX(x), dW(w), dB(b), dO(std::vector<float>(size_t(N) * ldo, std::nanf(""))),
        dD(pad_rows(dout, N, OC, ldo));
    Dev<float> gX(std::vector<float>(size_t(N) * IC, 0.f)), gW(std::vector<float>(size_t(OC) * IC, 0.f)),
        gB(std::vector<float>(OC, 0.f));
    // The bf16 copies as the backend passes them: the weight's (with cuBLASLt, or with the
    // producers' copies), the input's and the output gradient's (given16).
    Dev<uint16_t> dW16(bf16_bits_of(w)), dX16(bf16_bits_of(x)), dD16(bf16_bits_of(pad_rows(dout, N, OC, ldo)));
    const uint16_t* weight16 = lt || given16 ? dW16.p : nullptr;
    const float* inp = given16 ? nullptr : dX.p;  // the float32 input is not kept
    const uint16_t* x16 = given16 ? dX16.p : nullptr;
    const uint16_t* d16 = given16 ? dD16.p : nullptr;
    cu::matmul_forward(dO.p, inp, dW.p, dB.p, N, IC, OC, prec, nullptr, lt, ldo, weight16, x16);
    cu::matmul_backward(gX.p, gW.p, gB.p, dD.p, inp, dW.p, N, IC, OC, prec, nullptr, lt, ldo, weight16, x16,
                        false, d16);
    int pad_changed = 0;
    const auto got = unpad_rows(dO.down(), N, OC, ldo, &pad_changed);
    CHECK(pad_changed == 0);
    CHECK_ALL(gB.down(), db, 1e-4, 1e-4);  // the bias gradient is our kernel either way
    // sum_k |a_ik b_kj| of each product, for the bf16 bound.
    const auto ax = abs_of(x), aw = abs_of(w), ad = abs_of(dout);
    std::vector<float> s_out(size_t(N) * OC), s_dx(size_t(N) * IC, 0.f), s_dw(size_t(OC) * IC, 0.f);
    cpu::matmul_forward<float>(s_out.data(), ax.data(), aw.data(), nullptr, N, IC, OC);
    cpu::matmul_backward<float>(s_dx.data(), s_dw.data(), nullptr, ad.data(), ax.data(), aw.data(), N, IC, OC);
    if (lt) {
      // cuBLASLt multiplies the bf16 copies (rounded to nearest even), and an odd
      // extent's last columns / rows run on our kernel (bf16 too): against float32 on the
      // unrounded inputs, the bf16 bound.
      std::vector<float> ex(size_t(N) * OC), ex_dx(size_t(N) * IC, 0.f), ex_dw(size_t(OC) * IC, 0.f);
      cpu::matmul_forward<float>(ex.data(), x.data(), w.data(), b.data(), N, IC, OC);
      cpu::matmul_backward<float>(ex_dx.data(), ex_dw.data(), nullptr, dout.data(), x.data(), w.data(), N, IC, OC);
      const auto gx = gX.down(), gw = gW.down();
      CHECK_BOUND(got, ex, bf16_bound(s_out));
      CHECK_BOUND(gx, ex_dx, bf16_bound(s_dx));
      CHECK_BOUND(gw, ex_dw, bf16_bound(s_dw));
      std::printf("  cuBLASLt N %d IC %d OC %d%s: worst error / bf16 bound: out %.2f dinp %.2f dweight %.2f\n",
                  N, IC, OC, padded ? " padded" : "", worst_bound(got, ex, bf16_bound(s_out)),
                  worst_bound(gx, ex_dx, bf16_bound(s_dx)), worst_bound(gw, ex_dw, bf16_bound(s_dw)));
      continue;
    }
    // Same inputs, float32 accumulation in another order: sums of K ~ 100 terms of
    // size ~1 => 1e-4 abs + 1e-4 rel.
    CHECK_ALL(got, out, 1e-4, 1e-4);
    CHECK_ALL(gX.down(), dx, 1e-4, 1e-4);
    CHECK_ALL(gW.down(), dw, 1e-4, 1e-4);
    if (bf) {
      // Against float32 on the unrounded inputs: the bf16 bound.
      std::vector<float> exact(size_t(N) * OC);
      cpu::matmul_forward<float>(exact.data(), x.data(), w.data(), b.data(), N, IC, OC);
      CHECK_BOUND(got, exact, bf16_bound(s_out));
    }
  }
}

}  // namespace

TEST(linear_bf16_tensor_cores) { check_linear(cu::MatmulPrecision::BF16, false); }
TEST(linear_fp32) { check_linear(cu::MatmulPrecision::FP32, false); }
TEST(linear_padded_row_stride) {
  check_linear(cu::MatmulPrecision::BF16, true);
  check_linear(cu::MatmulPrecision::FP32, true);
}
// Our kernel on the bf16 copies that the producers write (no float32 input).
TEST(linear_bf16_given_copies) {
  check_linear(cu::MatmulPrecision::BF16, false, nullptr, true);
  check_linear(cu::MatmulPrecision::BF16, true, nullptr, true);
}

// Our bf16 kernel reading bf16 operands from memory (A16, B16) against reading float32
// and rounding as it stages: the same bf16 products summed in the same order, so the
// same bits, in every layout, with vector loads (aligned) and without (odd strides),
// batched, with a bias.
TEST(gemm_bf16_operands_bit_exact) {
  Rng rng(g_seed + 31);
  struct Case {
    int M, N, K, batch;
    int64_t pad;  // added to the leading dimensions (odd: no vector loads)
  };
  // Vector loads: {64, 200, 40} and the batched {32, 48, 16}; the others have an odd
  // extent or stride.
  for (const Case c : {Case{130, 67, 95, 1, 0}, Case{64, 200, 40, 1, 0}, Case{64, 200, 40, 1, 1},
                       Case{32, 48, 16, 3, 0}, Case{150, 9, 160, 2, 3}})
    for (int layout = 0; layout < 4; layout++) {
      cu::Gemm g;
      g.a_kcontig = layout & 1, g.b_ncontig = layout & 2;
      g.M = c.M, g.N = c.N, g.K = c.K, g.batch = c.batch;
      g.lda = (g.a_kcontig ? c.K : c.M) + c.pad;
      g.ldb = (g.b_ncontig ? c.N : c.K) + c.pad;
      g.ldc = c.N;
      const int64_t sa = g.lda * (g.a_kcontig ? c.M : c.K), sb = g.ldb * (g.b_ncontig ? c.K : c.N),
                    sc = int64_t(c.M) * c.N;
      g.ab = {sa, 0, 1, 1}, g.bb = {sb, 0, 1, 1}, g.cb = {sc, 0, 1, 1};  // batch z at z * stride
      const auto a = randn(size_t(sa) * c.batch, rng), b = randn(size_t(sb) * c.batch, rng),
                 bias = randn(c.N, rng);
      Dev<float> A(a), B(b), Bias(bias), C1(size_t(sc) * c.batch), C2(size_t(sc) * c.batch);
      Dev<uint16_t> A16(bf16_bits_of(a)), B16(bf16_bits_of(b));
      g.A = A.p, g.B = B.p, g.bias = Bias.p, g.C = C1.p;
      cu::gemm(g, cu::MatmulPrecision::BF16, nullptr);
      g.A = nullptr, g.B = nullptr, g.A16 = A16.p, g.B16 = B16.p, g.C = C2.p;
      cu::gemm(g, cu::MatmulPrecision::BF16, nullptr);
      CHECK_ALL(C2.down(), C1.down(), 0.0, 0.0);
    }
}
// The linear layer through cuBLASLt, rows at stride OC and padded (as the lm_head's).
TEST(linear_cublaslt) {
  const auto lt = cu::LtMatmul::create();
  if (!lt) {
    g_skip = "built without cuBLASLt";
    return;
  }
  check_linear(cu::MatmulPrecision::BF16, false, lt.get());
  check_linear(cu::MatmulPrecision::BF16, true, lt.get());
  // With the producers' copies only (no float32 input): the odd extents' remainders run on
  // our kernel from the offset bf16 copies.
  check_linear(cu::MatmulPrecision::BF16, false, lt.get(), true);
  check_linear(cu::MatmulPrecision::BF16, true, lt.get(), true);
}

TEST(embedding) {
  Rng rng(g_seed + 2);
  const int N = 77, C = 96, V = 50, maxT = 40;
  const auto wte = randn(size_t(V) * C, rng), wpe = randn(size_t(maxT) * C, rng);
  const auto tok = randint(N, V, rng), pos = randint(N, maxT, rng);
  const auto dout = randn(size_t(N) * C, rng);
  std::vector<float> out(size_t(N) * C), dwte(wte.size(), 0.f), dwpe(wpe.size(), 0.f);
  cpu::embedding_forward<float>(out.data(), tok.data(), pos.data(), wte.data(), wpe.data(), N, C);
  cpu::embedding_backward<float>(dwte.data(), dwpe.data(), dout.data(), tok.data(), pos.data(), N, C);
  Dev<float> dwteD(wte), dwpeD(wpe), o(out.size()), d(dout), g1(std::vector<float>(wte.size(), 0.f)),
      g2(std::vector<float>(wpe.size(), 0.f));
  Dev<int32_t> t(tok), p(pos);
  cu::embedding_forward(o.p, t.p, p.p, dwteD.p, dwpeD.p, N, C, nullptr);
  cu::embedding_backward(g1.p, g2.p, d.p, t.p, p.p, N, C, nullptr);
  CHECK_ALL(o.down(), out, 0.0, 0.0);  // one float add: exact
  CHECK_ALL(g1.down(), dwte, 1e-5, 1e-5);  // atomics: order of a few adds
  CHECK_ALL(g2.down(), dwpe, 1e-5, 1e-5);
}

TEST(layernorm_and_rmsnorm) {
  Rng rng(g_seed + 3);
  // 256 and 768: LayerNorm backward's register path (C a multiple of 128, up to 1024).
  for (int C : {96, 256, 768, 771}) {
    const int N = 45;
    const auto x = randn(size_t(N) * C, rng, 2.0), w = randn(C, rng), b = randn(C, rng);
    const auto dout = randn(size_t(N) * C, rng);
    std::vector<float> out(x.size()), mean(N), rstd(N), dx(x.size(), 0.f), dw(C, 0.f), db(C, 0.f);
    cpu::layernorm_forward<float>(out.data(), mean.data(), rstd.data(), x.data(), w.data(), b.data(), N, C, 1e-5);
    cpu::layernorm_backward<float>(dx.data(), dw.data(), db.data(), dout.data(), x.data(), w.data(),
                                   mean.data(), rstd.data(), N, C);
    Dev<float> X(x), W(w), Bb(b), O(x.size()), M(N), R(N), D(dout), GX(std::vector<float>(x.size(), 0.f)),
        GW(std::vector<float>(C, 0.f)), GB(std::vector<float>(C, 0.f));
    // With the bf16 copies of out and of dinp after the += (the products' operands).
    Dev<uint16_t> O16(x.size()), O16only(x.size()), GX16(x.size());
    cu::layernorm_forward(O.p, M.p, R.p, X.p, W.p, Bb.p, N, C, 1e-5, nullptr, O16.p);
    cu::layernorm_forward(nullptr, M.p, R.p, X.p, W.p, Bb.p, N, C, 1e-5, nullptr, O16only.p);
    cu::layernorm_backward(GX.p, GW.p, GB.p, D.p, X.p, W.p, M.p, R.p, N, C, nullptr, GX16.p);
    // float32 row sums of C terms (the CPU sums in double): 1e-5 abs + 1e-4 rel.
    const auto got = O.down(), got_dx = GX.down();
    CHECK_ALL(got, out, 1e-5, 1e-4);
    CHECK_ALL(R.down(), rstd, 1e-6, 1e-5);
    CHECK_ALL(got_dx, dx, 1e-5, 1e-4);
    // The copies: the device's own float32 results rounded to nearest even, bit for bit.
    CHECK_ALL(floats_of(O16.down()), rounded(got), 0.0, 0.0);
    CHECK_ALL(floats_of(O16only.down()), rounded(got), 0.0, 0.0);
    CHECK_ALL(floats_of(GX16.down()), rounded(got_dx), 0.0, 0.0);
    CHECK_ALL(GW.down(), dw, 1e-4, 1e-4);  // sums over N rows in a different order
    CHECK_ALL(GB.down(), db, 1e-4, 1e-4);

    std::vector<float> rout(x.size()), rr(N), rdx(x.size(), 0.f), rdw(C, 0.f);
    cpu::rmsnorm_forward<float>(rout.data(), rr.data(), x.data(), w.data(), N, C, 1e-5);
    cpu::rmsnorm_backward<float>(rdx.data(), rdw.data(), dout.data(), x.data(), w.data(), rr.data(), N, C);
    Dev<float> RO(x.size()), RR(N), RGX(std::vector<float>(x.size(), 0.f)), RGW(std::vector<float>(C, 0.f));
    Dev<uint16_t> RO16(x.size()), RO16only(x.size()), RGX16(x.size());
    cu::rmsnorm_forward(RO.p, RR.p, X.p, W.p, N, C, 1e-5, nullptr, RO16.p);
    cu::rmsnorm_forward(nullptr, RR.p, X.p, W.p, N, C, 1e-5, nullptr, RO16only.p);
    cu::rmsnorm_backward(RGX.p, RGW.p, D.p, X.p, W.p, RR.p, N, C, nullptr, RGX16.p);
    const auto rgot = RO.down(), rgot_dx = RGX.down();
    CHECK_ALL(rgot, rout, 1e-5, 1e-4);
    CHECK_ALL(rgot_dx, rdx, 1e-5, 1e-4);
    CHECK_ALL(floats_of(RO16.down()), rounded(rgot), 0.0, 0.0);
    CHECK_ALL(floats_of(RO16only.down()), rounded(rgot), 0.0, 0.0);
    CHECK_ALL(floats_of(RGX16.down()), rounded(rgot_dx), 0.0, 0.0);

    // With a residual: inp += residual in place, then the norm of the sum: the same bits
    // as the norm of the sum added on the host (one float add per element).
    const auto part = randn(x.size(), rng), res = randn(x.size(), rng);
    std::vector<float> sum(x.size());
    for (size_t i = 0; i < x.size(); i++) sum[i] = part[i] + res[i];
    Dev<float> SUM(sum), P1(part), P2(part), RES(res), O1(x.size()), O2(x.size()), M1(N), R1(N);
    Dev<uint16_t> O16a(x.size()), O16b(x.size());
    cu::layernorm_forward(O1.p, M.p, R.p, SUM.p, W.p, Bb.p, N, C, 1e-5, nullptr, O16a.p);
    cu::layernorm_forward(O2.p, M1.p, R1.p, P1.p, W.p, Bb.p, N, C, 1e-5, nullptr, O16b.p, RES.p);
    CHECK_ALL(P1.down(), sum, 0.0, 0.0);
    CHECK_ALL(O2.down(), O1.down(), 0.0, 0.0);
    CHECK_ALL(M1.down(), M.down(), 0.0, 0.0);
    CHECK_ALL(R1.down(), R.down(), 0.0, 0.0);
    CHECK_ALL(floats_of(O16b.down()), floats_of(O16a.down()), 0.0, 0.0);
    cu::rmsnorm_forward(O1.p, R.p, SUM.p, W.p, N, C, 1e-5, nullptr);
    cu::rmsnorm_forward(O2.p, R1.p, P2.p, W.p, N, C, 1e-5, nullptr, nullptr, RES.p);
    CHECK_ALL(P2.down(), sum, 0.0, 0.0);
    CHECK_ALL(O2.down(), O1.down(), 0.0, 0.0);
    CHECK_ALL(R1.down(), R.down(), 0.0, 0.0);
    CHECK_ALL(RGW.down(), rdw, 1e-4, 1e-4);
  }
}

TEST(rope) {
  Rng rng(g_seed + 4);
  const int N = 33, H = 4, KVH = 2, hd = 16, QKV = (H + 2 * KVH) * hd, maxT = 64;
  std::vector<float> cs(maxT * hd / 2), sn(maxT * hd / 2);
  cpu::rope_tables(cs.data(), sn.data(), maxT, hd, 10000.0);
  const auto qkv = randn(size_t(N) * QKV, rng);
  const auto pos = randint(N, maxT, rng);
  auto f = qkv, b = qkv;
  cpu::rope_forward<float>(f.data(), pos.data(), cs.data(), sn.data(), N, QKV, H, KVH, hd);
  cpu::rope_backward<float>(b.data(), pos.data(), cs.data(), sn.data(), N, QKV, H, KVH, hd);
  Dev<float> F(qkv), Bk(qkv), CS(cs), SN(sn);
  Dev<int32_t> P(pos);
  cu::rope_forward(F.p, P.p, CS.p, SN.p, N, QKV, H, KVH, hd, nullptr);
  cu::rope_backward(Bk.p, P.p, CS.p, SN.p, N, QKV, H, KVH, hd, nullptr);
  CHECK_ALL(F.down(), f, 1e-6, 1e-6);  // two products and a sum per element
  CHECK_ALL(Bk.down(), b, 1e-6, 1e-6);
}

TEST(gelu_swiglu_residual) {
  Rng rng(g_seed + 5);
  const int N = 37, Fd = 101;
  const auto x = randn(size_t(N) * 2 * Fd, rng, 2.0), d = randn(size_t(N) * 2 * Fd, rng);
  std::vector<float> go(x.size()), gd(x.size(), 0.f), so(size_t(N) * Fd), sd(x.size(), 0.f);
  cpu::gelu_forward<float>(go.data(), x.data(), x.size());
  cpu::gelu_backward<float>(gd.data(), x.data(), d.data(), x.size());
  cpu::swiglu_forward<float>(so.data(), x.data(), N, Fd);
  cpu::swiglu_backward<float>(sd.data(), x.data(), d.data(), N, Fd);
  // The backward passes overwrite dinp (the CPU's add into zeros): NaN before.
  const std::vector<float> nan(x.size(), std::nanf(""));
  Dev<float> X(x), D(d), GO(x.size()), GD(nan), SO(so.size()), SD(nan);
  Dev<uint16_t> GO16(x.size()), GD16(x.size()), SO16(so.size()), SD16(x.size());
  cu::gelu_forward(GO.p, X.p, x.size(), nullptr, GO16.p);
  cu::gelu_backward(GD.p, X.p, D.p, N, 2 * Fd, nullptr, GD16.p);
  cu::swiglu_forward(SO.p, X.p, N, Fd, nullptr, SO16.p);
  cu::swiglu_backward(SD.p, X.p, D.p, N, Fd, nullptr, SD16.p);
  // expf (CUDA, <= 2 ulp) vs the CPU's vectorised exp (<= 2 ulp): a few float ulps.
  const auto go_got = GO.down(), gd_got = GD.down(), so_got = SO.down(), sd_got = SD.down();
  CHECK_ALL(go_got, go, 1e-6, 1e-5);
  CHECK_ALL(gd_got, gd, 1e-6, 1e-5);
  CHECK_ALL(so_got, so, 1e-6, 1e-5);
  CHECK_ALL(sd_got, sd, 1e-6, 1e-5);
  // The bf16 copies: the device's float32 results rounded to nearest even, bit for bit;
  // and the same copies with no float32 output (vector path, then unaligned: the tail).
  CHECK_ALL(floats_of(GO16.down()), rounded(go_got), 0.0, 0.0);
  CHECK_ALL(floats_of(GD16.down()), rounded(gd_got), 0.0, 0.0);
  CHECK_ALL(floats_of(SO16.down()), rounded(so_got), 0.0, 0.0);
  CHECK_ALL(floats_of(SD16.down()), rounded(sd_got), 0.0, 0.0);
  for (size_t skip : {size_t(0), size_t(1)}) {
    const size_t n = x.size() - skip;
    Dev<uint16_t> O16(n), D16(n);
    cu::gelu_forward(nullptr, X.p + skip, n, nullptr, O16.p);
    cu::gelu_backward(nullptr, X.p + skip, D.p + skip, 1, static_cast<int>(n), nullptr, D16.p);
    CHECK_ALL(floats_of(O16.down()), rounded(std::vector<float>(go_got.begin() + skip, go_got.end())), 0.0, 0.0);
    CHECK_ALL(floats_of(D16.down()), rounded(std::vector<float>(gd_got.begin() + skip, gd_got.end())), 0.0, 0.0);
  }
  // GELU backward's bias gradient: dbias += the column sums of dinp, over (rows, F) at
  // F = 202 (element path) and 128 (16-byte path), one row slice and three (atomics).
  for (auto [rows, F] : {std::array<int, 2>{37, 202}, {600, 128}}) {
    const auto bx = randn(size_t(rows) * F, rng, 2.0), bd = randn(size_t(rows) * F, rng), b0 = randn(F, rng);
    std::vector<float> g(bx.size(), 0.f);
    cpu::gelu_backward<float>(g.data(), bx.data(), bd.data(), bx.size());
    std::vector<float> db(F);
    for (int c = 0; c < F; c++) {
      double sum = b0[c];
      for (int r = 0; r < rows; r++) sum += g[size_t(r) * F + c];
      db[c] = static_cast<float>(sum);
    }
    Dev<float> BX(bx), BD(bd), BG(std::vector<float>(bx.size(), std::nanf(""))), DB(b0);
    Dev<uint16_t> BG16(bx.size());
    cu::gelu_backward(BG.p, BX.p, BD.p, rows, F, nullptr, BG16.p, DB.p);
    const auto bg = BG.down();
    CHECK_ALL(bg, g, 1e-6, 1e-5);
    CHECK_ALL(floats_of(BG16.down()), rounded(bg), 0.0, 0.0);
    // float32 sums of up to 600 terms of size ~1 (8 walkers of 75, then slices) against
    // the double sum: each of the ~80 adds on a path errs by <= 2^-24 |partial| (<~ 10),
    // so <~ 5e-5 in the worst case: 1e-4 abs + 1e-5 rel (measured <= 0.06 of it).
    CHECK_ALL(DB.down(), db, 1e-4, 1e-5);
  }
  std::vector<float> y = randn(x.size(), rng), yy = y;
  for (size_t i = 0; i < y.size(); i++) yy[i] += x[i];
  Dev<float> Y(y);
  cu::add_inplace(Y.p, X.p, x.size(), nullptr);
  CHECK_ALL(Y.down(), yy, 0.0, 0.0);
}

static void check_attention(int B, int T, int H, int KVH, int hd, cu::MatmulPrecision prec,
                            double atol, double rtol) {
  Rng rng(g_seed + 6 + T);
  const int QKV = (H + 2 * KVH) * hd, Q = H * hd;
  const auto qkv = randn(size_t(B) * T * QKV, rng), dout = randn(size_t(B) * T * Q, rng);
  std::vector<float> out(size_t(B) * T * Q), att(size_t(B) * H * T * T), dqkv(qkv.size(), 0.f);
  cpu::attention_forward<float>(out.data(), att.data(), qkv.data(), B, T, H, KVH, hd);
  cpu::attention_backward<float>(dqkv.data(), dout.data(), qkv.data(), att.data(), B, T, H, KVH, hd);
  Dev<float> X(qkv), O(out.size()), A(att.size()), D(dout), S(att.size()),
      G(std::vector<float>(qkv.size(), 0.f));
  cu::attention_forward(O.p, A.p, X.p, B, T, H, KVH, hd, prec, nullptr);
  cu::attention_backward(G.p, S.p, D.p, X.p, A.p, B, T, H, KVH, hd, prec, nullptr);
  CHECK_ALL(O.down(), out, atol, rtol);
  CHECK_ALL(A.down(), att, atol, rtol);
  CHECK_ALL(G.down(), dqkv, atol, rtol);
}
// float32: sums of <= T products of O(1) terms in another order: 1e-5 abs + 1e-4 rel.
TEST(attention_fp32_gqa) { check_attention(2, 37, 4, 2, 8, cu::MatmulPrecision::FP32, 1e-5, 1e-4); }
TEST(attention_fp32_mha_long) { check_attention(1, 150, 3, 3, 32, cu::MatmulPrecision::FP32, 1e-5, 1e-4); }
// bf16: q.k over hd = 32 with 2^-8 relative error per term on N(0,1) inputs gives
// score errors ~ 2^-8 sqrt(hd) / sqrt(hd) ~ 4e-3 after the 1/sqrt(hd) scale; the
// probabilities and the outputs inherit ~1e-2; gradients twice that.
TEST(attention_bf16) { check_attention(2, 70, 4, 1, 32, cu::MatmulPrecision::BF16, 3e-2, 3e-2); }

// Flash attention (attention_flash.cu) forward and backward against the CPU twin
// (native/cpu/attention.cpp, float32) and, on the device, the materialising kernel
// (attention.cu) in the same precision. Shapes cover odd T (not a multiple of the
// 64-row bf16 / 32-row fp32 tile, several tiles), GQA (H / KVH = 1, 2, 4), T = 1, and
// head sizes 8 .. 128 (padded inside the kernel to 32, 64 or 128). dqkv starts from
// random values (flash backward overwrites it; the materialising one, which adds, starts
// from zeros).
// lse is checked against a host log-sum-exp in double.
static double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double m = 0;
  for (size_t i = 0; i < a.size(); i++) m = std::max(m, std::isnan(a[i] - b[i]) ? 1e30 : std::fabs(double(a[i]) - b[i]));
  return m;
}
static void check_flash(int B, int T, int H, int KVH, int hd, cu::MatmulPrecision prec, double atol,
                        double rtol) {
  Rng rng(g_seed + 11 + T * 131 + hd);
  const int QKV = (H + 2 * KVH) * hd, Q = H * hd, grp = H / KVH;
  const auto qkv = randn(size_t(B) * T * QKV, rng), dout = randn(size_t(B) * T * Q, rng);
  const auto base = randn(qkv.size(), rng);
  std::vector<float> out(size_t(B) * T * Q), att(size_t(B) * H * T * T), dqkv(qkv.size(), 0.f);
  cpu::attention_forward<float>(out.data(), att.data(), qkv.data(), B, T, H, KVH, hd);
  cpu::attention_backward<float>(dqkv.data(), dout.data(), qkv.data(), att.data(), B, T, H, KVH, hd);
  std::vector<float> lse(size_t(B) * H * T);
  const double scale = 1.0 / std::sqrt(double(float(hd)));
  for (int b = 0; b < B; b++)
    for (int h = 0; h < H; h++)
      for (int t = 0; t < T; t++) {
        const float* q = qkv.data() + (size_t(b) * T + t) * QKV + h * hd;
        std::vector<double> s(t + 1);
        double mx = -1e300, sum = 0;
        for (int u = 0; u <= t; u++) {
          const float* k = qkv.data() + (size_t(b) * T + u) * QKV + Q + (h / grp) * hd;
          double dot = 0;
          for (int d = 0; d < hd; d++) dot += double(q[d]) * k[d];
          s[u] = dot * scale, mx = std::max(mx, s[u]);
        }
        for (double x : s) sum += std::exp(x - mx);
        lse[(size_t(b) * H + h) * T + t] = float(mx + std::log(sum));
      }
  Dev<float> X(qkv), D(dout), O(out.size()), L(lse.size()), DL(lse.size()), G(base);
  Dev<uint16_t> O16(out.size());
  cu::flash_attention_forward(O.p, L.p, X.p, B, T, H, KVH, hd, prec, nullptr, O16.p);
  cu::flash_attention_backward(G.p, DL.p, D.p, X.p, O.p, L.p, B, T, H, KVH, hd, prec, nullptr);
  const auto o = O.down(), l = L.down(), g = G.down();
  CHECK_ALL(floats_of(O16.down()), rounded(o), 0.0, 0.0);  // out's bf16 copy, bit for bit
  CHECK_ALL(o, out, atol, rtol);
  CHECK_ALL(l, lse, atol, rtol);
  CHECK_ALL(g, dqkv, atol, rtol);
  // The materialising kernel on the same inputs and precision, for comparison.
  Dev<float> MO(out.size()), MA(att.size()), MS(att.size()), MG(std::vector<float>(base.size(), 0.f));
  cu::attention_forward(MO.p, MA.p, X.p, B, T, H, KVH, hd, prec, nullptr);
  cu::attention_backward(MG.p, MS.p, D.p, X.p, MA.p, B, T, H, KVH, hd, prec, nullptr);
  const auto mo = MO.down(), mg = MG.down();
  if (prec == cu::MatmulPrecision::FP32) {  // both float32: the same tolerance between them
    CHECK_ALL(o, mo, atol, rtol);
    CHECK_ALL(g, mg, atol, rtol);
  }
  std::printf("  flash %s B%d T%d H%d KVH%d hd%d: max |err| vs cpu: out %.1e lse %.1e dqkv %.1e "
              "(materialising: out %.1e dqkv %.1e)\n",
              prec == cu::MatmulPrecision::BF16 ? "bf16" : "fp32", B, T, H, KVH, hd,
              max_abs_diff(o, out), max_abs_diff(l, lse), max_abs_diff(g, dqkv), max_abs_diff(mo, out),
              max_abs_diff(mg, dqkv));
}
// float32: the same sums as the CPU in another order, plus the online softmax's
// rescaling (a few float roundings per tile): 1e-5 abs + 1e-4 rel, as the materialising
// fp32 test. (A CPU emulation of the kernels measured <= 0.11 of this tolerance.)
TEST(flash_attention_fp32) {
  const auto fp = cu::MatmulPrecision::FP32;
  check_flash(2, 37, 4, 2, 8, fp, 1e-5, 1e-4);    // GQA 2:1, hd 8 padded to 32, 2 tiles
  check_flash(1, 150, 3, 3, 32, fp, 1e-5, 1e-4);  // MHA, 5 tiles (4 full + 22 rows)
  check_flash(2, 45, 4, 1, 40, fp, 1e-5, 1e-4);   // GQA 4:1, hd 40 padded to 64
  check_flash(1, 67, 2, 2, 64, fp, 1e-5, 1e-4);   // the presets' head size
  check_flash(1, 67, 4, 2, 128, fp, 1e-5, 1e-4);  // the largest supported head
  check_flash(1, 1, 2, 1, 16, fp, 1e-5, 1e-4);    // T = 1: one key, softmax = 1
  check_flash(1, 41, 3, 1, 7, fp, 1e-5, 1e-4);    // hd 7: rows staged without 16-byte loads
}
// bf16 operands (q, k, v, dout, and P, dS where they feed a product) with float32
// accumulation: the same error budget as the materialising bf16 test (scores err
// ~4e-3 after scaling, outputs ~1e-2, gradients twice that): 3e-2 abs + 3e-2 rel
// against the float32 CPU twin. (CPU emulation: <= 0.54 of this over 18 random cases.)
TEST(flash_attention_bf16) {
  const auto bf = cu::MatmulPrecision::BF16;
  check_flash(2, 70, 4, 1, 32, bf, 3e-2, 3e-2);   // GQA 4:1, 2 tiles of 64
  check_flash(1, 133, 4, 2, 64, bf, 3e-2, 3e-2);  // GQA 2:1, 3 tiles, the presets' head size
  check_flash(1, 97, 2, 1, 128, bf, 3e-2, 3e-2);  // hd 128
  check_flash(2, 50, 2, 2, 80, bf, 3e-2, 3e-2);   // hd 80 padded to 128, one partial tile
  check_flash(1, 1, 2, 1, 16, bf, 3e-2, 3e-2);    // T = 1
  check_flash(2, 66, 2, 2, 18, bf, 3e-2, 3e-2);   // hd 18: rows staged without 16-byte loads
}
TEST(flash_attention_rejects_large_heads) {
  CHECK(cu::flash_attention_supported(128) && !cu::flash_attention_supported(129));
  Dev<float> X(size_t(2) * 3 * 160), O(160), L(2);
  CHECK_THROWS(cu::flash_attention_forward(O.p, L.p, X.p, 1, 2, 1, 1, 160, cu::MatmulPrecision::BF16,
                                           nullptr),
               Unsupported, "head sizes");
}

TEST(attention_cached) {
  Rng rng(g_seed + 7);
  // hd 40: the generic kernel; 64 and 128: the split kernel, at len 300 with 2 or 3
  // position blocks per warp; positions 0 and len - 1 always among the rows.
  for (auto [hd, len] : {std::array<int, 2>{40, 75}, {64, 300}, {128, 75}}) {
    const int H = 4, KVH = 2, QKV = (H + 2 * KVH) * hd, slots = 3, N = 9;
    const auto qkv = randn(size_t(N) * QKV, rng);
    const auto kc = randn(size_t(slots) * KVH * len * hd, rng), vc = randn(kc.size(), rng);
    const auto slot = randint(N, slots, rng);
    auto pos = randint(N, len, rng);
    pos[0] = 0, pos[1] = len - 1;
    std::vector<float> out(size_t(N) * H * hd);
    cpu::attention_cached_forward<float>(out.data(), qkv.data(), kc.data(), vc.data(), slot.data(),
                                         pos.data(), N, QKV, H, KVH, hd, len);
    Dev<float> X(qkv), K(kc), Vv(vc), O(out.size());
    Dev<int32_t> S(slot), P(pos);
    cu::attention_cached_forward(O.p, X.p, K.p, Vv.p, S.p, P.p, N, QKV, H, KVH, hd, len, nullptr);
    CHECK_ALL(O.down(), out, 1e-5, 1e-4);  // online vs two-pass softmax, float32
    // A bf16 cache: the same float32 arithmetic on the rounded values, so the same bits as
    // a float32 cache holding those values.
    Dev<uint16_t> K16(bf16_bits_of(kc)), V16(bf16_bits_of(vc));
    Dev<float> Kr(rounded(kc)), Vr(rounded(vc)), O16(out.size()), Or(out.size());
    Dev<uint16_t> Ob(out.size()), Ob_only(out.size());
    cu::attention_cached_forward(O16.p, X.p, K16.p, V16.p, S.p, P.p, N, QKV, H, KVH, hd, len, nullptr, Ob.p);
    cu::attention_cached_forward(Or.p, X.p, Kr.p, Vr.p, S.p, P.p, N, QKV, H, KVH, hd, len, nullptr);
    const auto o16 = O16.down();
    CHECK_ALL(o16, Or.down(), 0.0, 0.0);
    // The output's bf16 copy, with and without the float32 output: the rounded floats.
    cu::attention_cached_forward(nullptr, X.p, K16.p, V16.p, S.p, P.p, N, QKV, H, KVH, hd, len, nullptr,
                                 Ob_only.p);
    CHECK_ALL(floats_of(Ob.down()), rounded(o16), 0.0, 0.0);
    CHECK_ALL(floats_of(Ob_only.down()), rounded(o16), 0.0, 0.0);
  }
  // kv_store: row r's k/v land at (slot, head, pos).
  const int H = 4, KVH = 2, hd = 40, QKV = (H + 2 * KVH) * hd, slots = 3, len = 75, N = 9;
  const auto qkv = randn(size_t(N) * QKV, rng);
  const size_t cache = size_t(slots) * KVH * len * hd;
  Dev<float> X(qkv);
  Dev<float> K2(std::vector<float>(cache, 0.f)), V2(std::vector<float>(cache, 0.f));
  const std::vector<int32_t> s1 = {2}, p1 = {11};
  Dev<int32_t> S1(s1), P1(p1);
  cu::kv_store(K2.p, V2.p, X.p, S1.p, P1.p, 1, QKV, H, KVH, hd, len, nullptr);
  Dev<uint16_t> K3(std::vector<uint16_t>(cache, 0)), V3(std::vector<uint16_t>(cache, 0));
  cu::kv_store(K3.p, V3.p, X.p, S1.p, P1.p, 1, QKV, H, KVH, hd, len, nullptr);
  const auto k2 = K2.down(), v2 = V2.down();
  const auto k3 = floats_of(K3.down()), v3 = floats_of(V3.down());
  int stored = 0;
  for (int h = 0; h < KVH; h++)
    for (int d = 0; d < hd; d++) {
      const size_t at = ((size_t(2) * KVH + h) * len + 11) * hd + d;
      CHECK(k2[at] == qkv[H * hd + h * hd + d]);
      CHECK(v2[at] == qkv[(H + KVH) * hd + h * hd + d]);
      CHECK(k3[at] == bf16_round(qkv[H * hd + h * hd + d]));  // bf16: rounded to nearest even
      CHECK(v3[at] == bf16_round(qkv[(H + KVH) * hd + h * hd + d]));
      stored += k3[at] != 0;
    }
  CHECK(stored > 0);
}

TEST(classifier_rows_rl_loss) {
  Rng rng(g_seed + 8);
  const int m = 23, V = 3001;
  const auto logits = randn(size_t(m) * V, rng, 3.0);
  const auto target = randint(m, V, rng);
  std::vector<int32_t> slot(m);
  for (int r = 0; r < m; r++) slot[r] = 2 * r + 1;  // loss arrays are indexed by slot
  const size_t S = 2 * m + 2;
  std::vector<float> w(S), wpg(S), adv(S), wkl(S), ref(S), old(S);
  for (size_t i = 0; i < S; i++) {
    w[i] = float(0.5 + rng.uniform()), wpg[i] = float(rng.uniform()), adv[i] = float(rng.normal());
    wkl[i] = float(0.1 * rng.uniform()), ref[i] = float(-8 - rng.uniform()), old[i] = float(-8 - rng.uniform());
  }
  for (bool k3 : {false, true})
    for (double clip : {0.0, 0.2}) {
      TokenLoss tl;
      tl.rl = true, tl.weight = w.data(), tl.w_pg = wpg.data(), tl.adv = adv.data(), tl.w_kl = wkl.data();
      tl.ref_logp = ref.data(), tl.old_logp = old.data(), tl.kl = k3 ? KlEstimator::K3 : KlEstimator::K1;
      tl.clip_eps = clip, tl.norm = 7.0;
      // Host reference in double.
      std::vector<float> lp(m), ent(m), dl(size_t(m) * V);
      std::vector<float> pg(m);
      for (int r = 0; r < m; r++) {
        const float* x = logits.data() + size_t(r) * V;
        double mx = -1e30, s = 0, sez = 0;
        for (int v = 0; v < V; v++) mx = std::max(mx, double(x[v]));
        for (int v = 0; v < V; v++) s += std::exp(x[v] - mx), sez += std::exp(x[v] - mx) * (x[v] - mx);
        lp[r] = float(x[target[r]] - mx - std::log(s));
        ent[r] = float(std::log(s) - sez / s);
        const TokenLossTerms t = token_loss(tl, slot[r], lp[r]);
        pg[r] = float(w[slot[r]] * t.pg);
        const double g = w[slot[r]] * t.dlogp / tl.norm;
        for (int v = 0; v < V; v++)
          dl[size_t(r) * V + v] = float(g * ((v == target[r]) - std::exp(x[v] - mx) / s));
      }
      // Rows at stride V, and padded to a stride of 3072 (as the backend pads its chunks):
      // the padding holds NaN and must come back untouched.
      for (const int ld : {V, 3072}) {
        Dev<float> L(pad_rows(logits, m, V, ld)), W(w), WPG(wpg), ADV(adv), WKL(wkl), REF(ref), OLD(old), LP(m), EN(m);
        Dev<int32_t> TG(target), SL(slot);
        Dev<double> ST(4 * m);
        cu::DeviceTokenLoss dtl;
        dtl.rl = true, dtl.weight = W.p, dtl.w_pg = WPG.p, dtl.adv = ADV.p, dtl.w_kl = WKL.p;
        dtl.ref_logp = REF.p, dtl.old_logp = OLD.p, dtl.k3 = k3, dtl.clip_eps = clip, dtl.inv_norm = 1 / 7.0;
        int pad_changed = 0;
        cu::ClassifierRowOut out;
        out.logp = LP.p, out.entropy = EN.p, out.pg = ST.p, out.kl = ST.p + m, out.kl_raw = ST.p + 2 * m,
        out.clipped = ST.p + 3 * m;
        cu::classifier_rows(L.p, ld, TG.p, SL.p, m, V, &dtl, out, nullptr);
        // Once more with the bf16 copy asked for: dlogits go only there, the logits stay.
        Dev<float> L2(pad_rows(logits, m, V, ld));
        Dev<uint16_t> L16(std::vector<uint16_t>(size_t(m) * ld, 0xABCD));
        out.dlogits16 = L16.p;
        cu::classifier_rows(L2.p, ld, TG.p, SL.p, m, V, &dtl, out, nullptr);
        CHECK_ALL(unpad_rows(L2.down(), m, V, ld, &pad_changed), logits, 0.0, 0.0);
        // logsumexp over 3001 float terms: 1e-5 abs + 1e-5 rel on logp and entropy.
        CHECK_ALL(LP.down(), lp, 1e-5, 1e-5);
        CHECK_ALL(EN.down(), ent, 1e-5, 1e-5);
        const auto got = unpad_rows(L.down(), m, V, ld, &pad_changed);
        CHECK(pad_changed == 0);
        CHECK_ALL(got, dl, 1e-7, 1e-4);  // dlogits: probabilities ~1e-4, float exp
        // The bf16 dlogits: the float ones rounded to nearest even, bit for bit; the
        // padding untouched.
        const auto g16 = L16.down();
        const auto want16 = bf16_bits_of(got);  // (m, V)
        int bad16 = 0, pad16 = 0;
        for (int r = 0; r < m; r++)
          for (int v = 0; v < ld; v++) {
            const uint16_t h = g16[size_t(r) * ld + v];
            if (v >= V)
              pad16 += h != 0xABCD;
            else
              bad16 += h != want16[size_t(r) * V + v];
          }
        CHECK(bad16 == 0);
        CHECK(pad16 == 0);
        const auto st = ST.down();
        std::vector<float> pgd(m);
        for (int r = 0; r < m; r++) pgd[r] = float(st[r]);
        CHECK_ALL(pgd, pg, 1e-5, 1e-4);
      }
    }
}

TEST(greedy_rows) {
  Rng rng(g_seed + 9);
  const int m = 17, V = 5003;
  auto logits = randn(size_t(m) * V, rng, 2.0);
  logits[3 * V + 10] = logits[3 * V + 20] = 50.f;  // a tie: the lower index wins
  std::vector<int32_t> tok(m);
  std::vector<float> lp(m);
  for (int r = 0; r < m; r++) {
    const float* x = logits.data() + size_t(r) * V;
    const int a = int(std::max_element(x, x + V) - x);
    double s = 0;
    for (int v = 0; v < V; v++) s += std::exp(double(x[v]) - x[a]);
    tok[r] = a, lp[r] = float(-std::log(s));
  }
  Dev<float> L(logits), LP(m);
  Dev<int32_t> TK(m);
  cu::greedy_rows(TK.p, LP.p, L.p, m, V, nullptr);
  CHECK(TK.down() == tok);
  CHECK_ALL(LP.down(), lp, 1e-6, 1e-5);
}

// Device sampling (sampling.cu, sample_rows) against the CPU sampler: each row gets the
// uniform that cpu::sample_row drew from the same stream, so the tokens must agree. The
// probabilities are float exps on both sides (CUDA expf vs the CPU's vectorised exp, a
// few ulps apart), which moves a CDF boundary by ~1e-7 of the mass: a draw that close to
// a boundary may pick the neighbour (estimated ~2.5e-4 per draw at V = 5003 and ~10x that
// at V = 50257: ~0.1 expected in this test); at most 2 such rows are accepted, each printed. Where the tokens agree:
// logp within 1e-5, logp_sampling within 2e-5 (double sums in another order of the same
// float probabilities). Rows include masked (-inf) tokens, a tied maximum and tied pairs
// (odd k splits a pair at the top-k boundary); settings cover plain, top-k (<= 512 and
// above: the CPU's two paths), top-p, both, k >= V, a tiny top-p (argmax only) and k = 1.
// (bench/gpu/emulate/run.sh runs the same cases on the CPU.)
TEST(sample_rows_match_cpu) {
  Rng rng(g_seed + 12);
  struct Set { double T; int k; double p; };
  int mismatches = 0;
  for (int V : {5003, 50257}) {
    const std::vector<Set> sets = V > 10000 ? std::vector<Set>{{0.8, 51, 0.9}, {1.0, 0, 0.95}}
        : std::vector<Set>{{1.0, 0, 1.0}, {0.7, 51, 1.0}, {1.3, 0, 0.9}, {0.8, 51, 0.9}, {1.0, 701, 1.0},
                           {0.9, 701, 0.5}, {0.5, V + 5, 0.95}, {1.0, 0, 1e-3}, {2.0, 1, 1.0}};
    const int m = 12;
    for (const Set& st : sets) {
      auto x = randn(size_t(m) * V, rng, 3.0);
      for (int r = 0; r < m; r++) {
        float* row = x.data() + size_t(r) * V;
        if (r % 3 == 1)
          for (int j = int(rng.next_u64() % 7); j < V; j += 7) row[j] = -INFINITY;
        if (r % 3 == 2) {
          const int a = int(std::max_element(row, row + V) - row);
          row[(a + V / 2) % V] = row[a];
          for (int j = 0; j + 1 < V; j += 2) row[j + 1] = row[j];
        }
      }
      cpu::SamplingParams sp;
      sp.temperature = st.T, sp.top_k = st.k, sp.top_p = st.p;
      std::vector<double> u(m);
      std::vector<cpu::SampleResult> ref(m);
      cpu::SampleScratch scratch;
      for (int r = 0; r < m; r++) {
        Rng stream(rng.next_u64());
        Rng copy = stream;
        ref[r] = cpu::sample_row(x.data() + size_t(r) * V, V, sp, copy, scratch);
        u[r] = stream.uniform();  // the one uniform the CPU sampler drew
      }
      Dev<float> L(x), LP(m), LPS(m);
      Dev<double> U(u);
      Dev<int32_t> TK(m), ST(m);
      cu::sample_rows(TK.p, LP.p, LPS.p, ST.p, L.p, U.p, m, V, cu::device_sampling_params(st.T, st.k, st.p), nullptr);
      const auto tk = TK.down(), stt = ST.down();
      const auto lp = LP.down(), lps = LPS.down();
      for (int r = 0; r < m; r++) {
        CHECK(stt[r] == cu::kSampleOk);
        if (tk[r] != ref[r].token) {
          mismatches++;
          std::printf("  sample_rows: V %d T %.2f top_k %d top_p %.3f row %d: cpu token %d, device %d (u %.9f)\n",
                      V, st.T, st.k, st.p, r, ref[r].token, tk[r], u[r]);
          continue;
        }
        CHECK_NEAR(lp[r], ref[r].logp, 1e-5, 0.0);
        CHECK_NEAR(lps[r], ref[r].logp_sampling, 2e-5, 0.0);
      }
    }
  }
  CHECK(mismatches <= 2);
  // Rows the CPU sampler refuses: NaN, +inf, all -inf (a flat row samples index u * V).
  const int V = 300;
  std::vector<float> x(size_t(4) * V, 0.5f);
  x[1 * V + 7] = NAN;
  x[2 * V + 9] = INFINITY;
  for (int j = 0; j < V; j++) x[3 * V + j] = -INFINITY;
  Dev<float> L(x), LP(4), LPS(4);
  Dev<double> U(std::vector<double>(4, 0.5));
  Dev<int32_t> TK(4), ST(4);
  cu::sample_rows(TK.p, LP.p, LPS.p, ST.p, L.p, U.p, 4, V, cu::device_sampling_params(1.0, 0, 1.0), nullptr);
  const auto stt = ST.down(), tk = TK.down();
  CHECK(stt[0] == cu::kSampleOk && tk[0] == 150);
  CHECK(stt[1] == cu::kSampleNaN && stt[2] == cu::kSamplePosInf && stt[3] == cu::kSampleNoFinite);
  CHECK(std::string(cu::sample_status_message(cu::kSampleNaN)) == "sample_row: logits contain NaN");
}

// to_bf16 (the operands of cuBLASLt's bf16 products): round to nearest even, bit for bit
// the host's rounding, on the 16-byte path (cols and ld multiples of 4) and the
// element path (odd cols, a strided ld); the columns past cols stay untouched.
TEST(to_bf16) {
  Rng rng(g_seed + 30);
  for (auto [rows, cols, ld] : {std::array<int, 3>{37, 64, 64}, {5, 33, 40}, {1, 1001, 1001}, {3, 8, 12}}) {
    auto src = randn(size_t(rows) * ld, rng, 3.0);
    src[0] = 1.0f + 1.0f / 256.0f;  // exactly halfway between two bf16 values: rounds to even (1.0)
    Dev<float> S(src);
    Dev<uint16_t> D(std::vector<uint16_t>(size_t(rows) * ld, 0xABCD));
    cu::to_bf16(D.p, S.p, rows, cols, ld, nullptr);
    const auto got = D.down(), want = bf16_bits_of(src);
    int bad = 0, touched = 0;
    for (int r = 0; r < rows; r++)
      for (int c = 0; c < ld; c++) {
        const size_t i = size_t(r) * ld + c;
        if (c >= cols)
          touched += got[i] != 0xABCD;
        else
          bad += got[i] != want[i];
      }
    CHECK(bad == 0);
    CHECK(touched == 0);
    CHECK(got[0] == 0x3F80);  // 1.0
    // With the column sums (a bias gradient) in the same pass: the same bits, and colsum
    // += the sums, as GELU backward's bias gradient (1e-4 + 1e-5 against double sums).
    const auto c0 = randn(cols, rng);
    std::vector<float> sums(cols);
    for (int c = 0; c < cols; c++) {
      double t = c0[c];
      for (int r = 0; r < rows; r++) t += src[size_t(r) * ld + c];
      sums[c] = float(t);
    }
    Dev<uint16_t> D2(std::vector<uint16_t>(size_t(rows) * ld, 0xABCD));
    Dev<float> CS(c0);
    cu::to_bf16(D2.p, S.p, rows, cols, ld, nullptr, CS.p);
    CHECK(D2.down() == got);
    CHECK_ALL(CS.down(), sums, 1e-4, 1e-5);
  }
  // 600 rows: three row slices meeting in atomics, 16-byte and element paths.
  for (int cols : {128, 131}) {
    const int rows = 600;
    const auto src = randn(size_t(rows) * cols, rng), c0 = randn(cols, rng);
    std::vector<float> sums(cols);
    for (int c = 0; c < cols; c++) {
      double t = c0[c];
      for (int r = 0; r < rows; r++) t += src[size_t(r) * cols + c];
      sums[c] = float(t);
    }
    Dev<float> S(src), CS(c0);
    Dev<uint16_t> D(size_t(rows) * cols);
    cu::to_bf16(D.p, S.p, rows, cols, cols, nullptr, CS.p);
    CHECK(D.down() == bf16_bits_of(src));
    CHECK_ALL(CS.down(), sums, 1e-4, 1e-5);
  }
}

TEST(gather_and_scatter_rows) {
  Rng rng(g_seed + 32);
  const int N = 50, C = 72, m = 9;
  const auto src = randn(size_t(N) * C, rng), base = randn(size_t(N) * C, rng);
  std::vector<int32_t> rows(m);  // distinct, as the backend's target rows
  const int shift = static_cast<int>(rng.next_u64() % N);
  for (int r = 0; r < m; r++) rows[r] = (7 * r + shift) % N;  // 7 r < N: no two equal
  std::vector<float> want(size_t(m) * C), added(base);
  for (int r = 0; r < m; r++)
    for (int c = 0; c < C; c++) {
      want[size_t(r) * C + c] = src[size_t(rows[r]) * C + c];
      added[size_t(rows[r]) * C + c] += want[size_t(r) * C + c];
    }
  Dev<float> S(src), G(size_t(m) * C), D(base);
  Dev<uint16_t> G16(size_t(m) * C);
  Dev<int32_t> R(rows);
  cu::gather_rows(G.p, S.p, R.p, m, C, nullptr);
  cu::gather_rows(G16.p, S.p, R.p, m, C, nullptr);
  cu::scatter_add_rows(D.p, G.p, R.p, m, C, nullptr);
  CHECK_ALL(G.down(), want, 0.0, 0.0);
  CHECK_ALL(floats_of(G16.down()), rounded(want), 0.0, 0.0);  // nearest even
  CHECK_ALL(D.down(), added, 0.0, 0.0);  // one float add each
}

TEST(sum_squares) {
  Rng rng(g_seed + 10);
  const size_t n = 100003;
  const auto g = randn(n, rng);
  Dev<float> Gd(g);
  Dev<double> SS(std::vector<double>{0.0});
  cu::sum_squares(SS.p, Gd.p, n, nullptr);
  CHECK_NEAR(SS.down()[0], cpu::sum_squares(g.data(), n), 0.0, 1e-12);  // double sums, different order
}

// One launch over four tensors of one flat buffer, against the CPU's update per tensor:
// with weight decay over three chunks and a tail, without at an odd offset (the element
// path), with over two chunks, without at the end. The gradient scale comes from the sum of
// squares on the device: no clipping (norm 2 under 5), clipping (6: a scale of 0.83), and
// a poisoned (non-finite) norm.
TEST(adamw_one_launch) {
  Rng rng(g_seed + 11);
  const std::vector<cu::AdamWTensor> ts = {
      {0, 3 * cu::kAdamWChunk + 3, true}, {49155, 5, false}, {49160, 20001, true}, {69161, 3, false}};
  const size_t n = 69164;
  const std::vector<cu::AdamWChunk> chunks = cu::adamw_chunks(ts);
  CHECK(chunks.size() == 4 + 1 + 2 + 1);
  Dev<cu::AdamWChunk> CH(chunks);
  for (const double sumsq : {4.0, 36.0, double(NAN), double(INFINITY)}) {
    auto p = randn(n, rng), g = randn(n, rng), m = randn(n, rng, 0.1), v = randn(n, rng, 0.1);
    for (auto& x : v) x = x * x;
    Dev<float> P(p), Gd(g), M(m), Vd(v);
    Dev<uint16_t> P16(n);
    Dev<double> SS(std::vector<double>{sumsq});
    const auto p16_before = P16.down();
    const cu::AdamWHyper h{1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, 5.0, 3};
    cu::adamw_update(CH.p, int(chunks.size()), P.p, Gd.p, M.p, Vd.p, P16.p, SS.p, h, nullptr);
    const double norm = std::sqrt(sumsq);
    if (!std::isfinite(norm)) {  // nothing written
      CHECK(P.down() == p && M.down() == m && Vd.down() == v && P16.down() == p16_before);
      continue;
    }
    const float scale = norm > h.max_grad_norm ? float(h.max_grad_norm / (norm + 1e-6)) : 1.0f;
    for (const cu::AdamWTensor& t : ts)
      cpu::adamw_update(p.data() + t.offset, g.data() + t.offset, m.data() + t.offset,
                        v.data() + t.offset, t.numel, h.lr, h.beta1, h.beta2, h.eps,
                        t.decay ? h.weight_decay : 0.0f, h.t, scale);
    // The same float expression; the CPU may fuse multiply-adds (AVX-512): a few ulps.
    const auto got = P.down();
    CHECK_ALL(got, p, 1e-7, 1e-6);
    CHECK_ALL(M.down(), m, 1e-8, 1e-6);
    CHECK_ALL(Vd.down(), v, 1e-9, 1e-6);
    CHECK(P16.down() == bf16_bits_of(got));  // the device's own updated parameters, rounded to nearest even
  }
}

int main() {
  int count = 0;
  const cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess || count == 0) {
    std::printf("skipped: no usable CUDA device (%s)\n",
                err != cudaSuccess ? cudaGetErrorString(err) : "none found");
    return 0;
  }
  cudaDeviceProp prop;
  cudaGetDeviceProperties(&prop, 0);
  if (prop.major < 8) {
    std::printf("skipped: %s is sm_%d%d; the CUDA backend needs sm_80+\n", prop.name, prop.major, prop.minor);
    return 0;
  }
  // Fresh inputs every run; SCORE_TEST_SEED=<printed seed> repeats a run's inputs.
  const char* seed = std::getenv("SCORE_TEST_SEED");
  g_seed = seed ? std::strtoull(seed, nullptr, 10) : static_cast<uint64_t>(std::time(nullptr));
  std::printf("device %s, seed %llu\n", prop.name, static_cast<unsigned long long>(g_seed));
  int failed = 0, passed = 0, skipped = 0;
  for (auto& c : score_test::registry()) {
    const int before = score_test::failures();
    g_skip = nullptr;
    try {
      c.fn();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "  %s: unexpected exception: %s\n", c.name, e.what());
      score_test::failures()++;
    }
    const bool ok = score_test::failures() == before;
    if (ok && g_skip) {
      std::printf("skip %s (%s)\n", c.name, g_skip);
      skipped++;
      continue;
    }
    std::printf("%s %s\n", ok ? "ok  " : "FAIL", c.name);
    (ok ? passed : failed)++;
  }
  std::printf("%d passed, %d failed, %d skipped\n", passed, failed, skipped);
  return failed == 0 ? 0 : 1;
}
#endif
