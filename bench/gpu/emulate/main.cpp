// Runs the kernels of native/cuda/attention_flash.cu on the CPU (see run.sh) against a
// double-precision reference: forward output, lse, and the gradient added into a random
// dqkv. The cases are those of the flash tests in test/native/test_cuda_kernels.cpp,
// with their tolerances. This checks indexing, tiling, masking, the online softmax, GQA
// and the barriers' placement; the tensor-core fragment layout itself is emulated from
// the PTX documentation (prelude.h), so only a GPU run checks that assumption.
#include "kernel_emu.h"
#include <random>
#include <algorithm>
using namespace score::cuda;
using bf16 = __nv_bfloat16;

template <typename E, int D>
void fwd(float* out, float* lse, const float* qkv, int B, int T, int H, int KVH, int hd) {
  constexpr int R = Tile<E>::R;
  emu::launch({unsigned((T + R - 1) / R), unsigned(H), unsigned(B)}, Tile<E>::W * 32, forward_smem<E, D>(),
              [&] { flash_forward_kernel<E, D>(out, lse, qkv, T, H, KVH, hd, 1.0f / std::sqrt(float(hd))); });
}
template <typename E, int D>
void bwd(float* dqkv, float* delta, const float* dout, const float* qkv, const float* out, const float* lse, int B, int T, int H, int KVH, int hd) {
  constexpr int R = Tile<E>::R;
  const long rows = long(B) * T * H;
  emu::launch({unsigned((rows + 7) / 8), 1, 1}, 256, 0, [&] { flash_delta_kernel(delta, out, dout, B, T, H, hd); });
  emu::launch({unsigned((T + R - 1) / R), unsigned(KVH), unsigned(B)}, Tile<E>::W * 32, backward_smem<E, D>(),
              [&] { flash_backward_kernel<E, D>(dqkv, dout, qkv, lse, delta, T, H, KVH, hd, 1.0f / std::sqrt(float(hd))); });
}

void reference(std::vector<double>& out, std::vector<double>& lse, std::vector<double>& dqkv,
               const std::vector<float>& qkv, const std::vector<float>& dout, int B, int T, int H, int KVH, int hd) {
  const int Q = H * hd, QKV = (H + 2 * KVH) * hd, grp = H / KVH;
  const double sc = 1.0 / std::sqrt(double(float(hd)));
  out.assign(size_t(B) * T * Q, 0); lse.assign(size_t(B) * H * T, 0); dqkv.assign(qkv.size(), 0);
  for (int b = 0; b < B; b++) for (int h = 0; h < H; h++) {
    const int kv = h / grp;
    auto q = [&](int t, int d) { return double(qkv[(size_t(b) * T + t) * QKV + h * hd + d]); };
    auto k = [&](int t, int d) { return double(qkv[(size_t(b) * T + t) * QKV + Q + kv * hd + d]); };
    auto v = [&](int t, int d) { return double(qkv[(size_t(b) * T + t) * QKV + Q + KVH * hd + kv * hd + d]); };
    for (int t = 0; t < T; t++) {
      std::vector<double> p(t + 1), dp(t + 1);
      double mx = -1e300;
      for (int s = 0; s <= t; s++) { double x = 0; for (int d = 0; d < hd; d++) x += q(t, d) * k(s, d); p[s] = x * sc; mx = std::max(mx, p[s]); }
      double sum = 0; for (auto& x : p) sum += std::exp(x - mx);
      lse[(size_t(b) * H + h) * T + t] = mx + std::log(sum);
      for (auto& x : p) x = std::exp(x - mx) / sum;
      for (int d = 0; d < hd; d++) { double o = 0; for (int s = 0; s <= t; s++) o += p[s] * v(s, d); out[(size_t(b) * T + t) * Q + h * hd + d] = o; }
      auto go = [&](int d) { return double(dout[(size_t(b) * T + t) * Q + h * hd + d]); };
      double dot = 0;
      for (int s = 0; s <= t; s++) { double x = 0; for (int d = 0; d < hd; d++) x += go(d) * v(s, d); dp[s] = x; dot += p[s] * x; }
      for (int s = 0; s <= t; s++) {
        const double ds = sc * p[s] * (dp[s] - dot);
        for (int d = 0; d < hd; d++) {
          dqkv[(size_t(b) * T + t) * QKV + h * hd + d] += ds * k(s, d);
          dqkv[(size_t(b) * T + s) * QKV + Q + kv * hd + d] += ds * q(t, d);
          dqkv[(size_t(b) * T + s) * QKV + Q + KVH * hd + kv * hd + d] += p[s] * go(d);
        }
      }
    }
  }
}

double worst(const std::vector<float>& a, const std::vector<double>& b, double atol, double rtol, double* maxabs) {
  double w = 0; *maxabs = 0;
  for (size_t i = 0; i < a.size(); i++) {
    const double d = std::fabs(a[i] - b[i]);
    *maxabs = std::max(*maxabs, std::isnan(d) ? 1e30 : d);
    const double e = d / (atol + rtol * std::fabs(b[i]));
    if (!(e <= w)) w = std::isnan(e) ? 1e30 : e;
  }
  return w;
}

template <typename E>
int run(int B, int T, int H, int KVH, int hd, double atol, double rtol, unsigned seed) {
  const int Q = H * hd, QKV = (H + 2 * KVH) * hd;
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd;
  std::vector<float> qkv(size_t(B) * T * QKV), dout(size_t(B) * T * Q), base(qkv.size());
  for (auto& x : qkv) x = nd(rng);
  for (auto& x : dout) x = nd(rng);
  for (auto& x : base) x = nd(rng);  // backward adds: start from random values
  std::vector<float> out(dout.size(), NAN), lse(size_t(B) * H * T, NAN), delta(lse.size(), NAN), dqkv = base;
  auto go = [&](auto dconst) {
    constexpr int D = decltype(dconst)::value;
    fwd<E, D>(out.data(), lse.data(), qkv.data(), B, T, H, KVH, hd);
    bwd<E, D>(dqkv.data(), delta.data(), dout.data(), qkv.data(), out.data(), lse.data(), B, T, H, KVH, hd);
  };
  if (hd <= 32) go(std::integral_constant<int, 32>{});
  else if (hd <= 64) go(std::integral_constant<int, 64>{});
  else go(std::integral_constant<int, 128>{});
  std::vector<double> ro, rl, rd;
  reference(ro, rl, rd, qkv, dout, B, T, H, KVH, hd);
  for (size_t i = 0; i < rd.size(); i++) rd[i] += base[i];
  double m1, m2, m3;
  const double w1 = worst(out, ro, atol, rtol, &m1), w2 = worst(lse, rl, atol, rtol, &m2), w3 = worst(dqkv, rd, atol, rtol, &m3);
  const bool ok = w1 <= 1 && w2 <= 1 && w3 <= 1;
  std::printf("%s %s B%d T%d H%d KVH%d hd%d: out %.2e lse %.2e dqkv %.2e (x tol %.2f %.2f %.2f)\n", ok ? "ok  " : "FAIL",
              std::is_same_v<E, float> ? "fp32" : "bf16", B, T, H, KVH, hd, m1, m2, m3, w1, w2, w3);
  return ok ? 0 : 1;
}

int main() {
  int f = 0;
  f += run<float>(2, 37, 4, 2, 8, 1e-5, 1e-4, 1);
  f += run<float>(1, 150, 3, 3, 32, 1e-5, 1e-4, 2);
  f += run<float>(2, 45, 4, 1, 40, 1e-5, 1e-4, 3);
  f += run<float>(1, 67, 2, 2, 64, 1e-5, 1e-4, 4);
  f += run<float>(1, 67, 4, 2, 128, 1e-5, 1e-4, 5);
  f += run<float>(1, 1, 2, 1, 16, 1e-5, 1e-4, 6);
  f += run<bf16>(2, 70, 4, 1, 32, 3e-2, 3e-2, 7);
  f += run<bf16>(1, 133, 4, 2, 64, 3e-2, 3e-2, 8);
  f += run<bf16>(1, 97, 2, 1, 128, 3e-2, 3e-2, 9);
  f += run<bf16>(2, 50, 2, 2, 80, 3e-2, 3e-2, 10);
  f += run<bf16>(1, 1, 2, 1, 16, 3e-2, 3e-2, 11);
  std::printf("%d failed (%ld mma.sync calls emulated)\n", f, emu::mma_calls.load());
  return f ? 1 : 0;
}
