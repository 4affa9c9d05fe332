// Rotary position embeddings, rotate-half convention (Hugging Face Llama / Qwen2):
// per head, x1 = x[:hd/2], x2 = x[hd/2:], and column i and i + hd/2 share the angle
// angle(p, i) = p * theta^(-2i/hd).
#include <cmath>
#include <type_traits>

#include "cpu/kernels.h"
#include "cpu/parallel.h"

namespace score::cpu {

template <typename F>
void rope_tables(F* cos, F* sin, int max_pos, int hd, double theta) {
  const int half = hd / 2;
  for (int i = 0; i < half; ++i) {
    if constexpr (std::is_same_v<F, float>) {
      // Reproduce Hugging Face's float32 computation step by step, so that long positions
      // carry the same rounding as the reference (the float32 angle is off by ~p * 6e-8 rad):
      //   inv_freq = 1 / (base ** (arange(0, hd, 2).float() / hd));  freqs = pos.float() * inv_freq
      const float e = static_cast<float>(2 * i) / static_cast<float>(hd);
      const float base_pow = static_cast<float>(std::pow(static_cast<double>(static_cast<float>(theta)),
                                                         static_cast<double>(e)));
      const float inv_freq = 1.0f / base_pow;
      for (int p = 0; p < max_pos; ++p) {
        const float ang = static_cast<float>(p) * inv_freq;
        cos[static_cast<size_t>(p) * half + i] = static_cast<float>(std::cos(static_cast<double>(ang)));
        sin[static_cast<size_t>(p) * half + i] = static_cast<float>(std::sin(static_cast<double>(ang)));
      }
    } else {  // exact, for the double gradient checks
      const double inv_freq = std::pow(theta, -2.0 * i / hd);
      for (int p = 0; p < max_pos; ++p) {
        const double ang = p * inv_freq;
        cos[static_cast<size_t>(p) * half + i] = static_cast<F>(std::cos(ang));
        sin[static_cast<size_t>(p) * half + i] = static_cast<F>(std::sin(ang));
      }
    }
  }
}

// Rotates the first H + KVH heads of every row of qkv (N, QKV) by +angle (forward) or
// -angle (backward: the gradient of a rotation is the inverse rotation, i.e. sin -> -sin).
template <typename F>
static void rope_apply(F* qkv, const int32_t* pos, const F* cos, const F* sin, int N, int QKV,
                       int H, int KVH, int hd, F sign) {
  const int half = hd / 2;
  parallel_for(N, static_cast<double>(N) * (H + KVH) * hd > 32768, [&](int n) {
    const F* c = cos + static_cast<size_t>(pos[n]) * half;
    const F* s = sin + static_cast<size_t>(pos[n]) * half;
    F* row = qkv + static_cast<size_t>(n) * QKV;
    for (int h = 0; h < H + KVH; ++h) {
      F* x1 = row + static_cast<size_t>(h) * hd;
      F* x2 = x1 + half;
      for (int i = 0; i < half; ++i) {
        const F a = x1[i], b = x2[i], si = sign * s[i];
        x1[i] = a * c[i] - b * si;  // out1 = x1 cos - x2 sin
        x2[i] = b * c[i] + a * si;  // out2 = x2 cos + x1 sin
      }
    }
  });
}

template <typename F>
void rope_forward(F* qkv, const int32_t* pos, const F* cos, const F* sin, int N, int QKV, int H,
                  int KVH, int hd) {
  rope_apply(qkv, pos, cos, sin, N, QKV, H, KVH, hd, F(1));
}

template <typename F>
void rope_backward(F* dqkv, const int32_t* pos, const F* cos, const F* sin, int N, int QKV, int H,
                   int KVH, int hd) {
  rope_apply(dqkv, pos, cos, sin, N, QKV, H, KVH, hd, F(-1));
}

template void rope_tables<float>(float*, float*, int, int, double);
template void rope_tables<double>(double*, double*, int, int, double);
template void rope_forward<float>(float*, const int32_t*, const float*, const float*, int, int, int,
                                  int, int);
template void rope_forward<double>(double*, const int32_t*, const double*, const double*, int, int,
                                   int, int, int);
template void rope_backward<float>(float*, const int32_t*, const float*, const float*, int, int,
                                   int, int, int);
template void rope_backward<double>(double*, const int32_t*, const double*, const double*, int,
                                    int, int, int, int);

}  // namespace score::cpu
