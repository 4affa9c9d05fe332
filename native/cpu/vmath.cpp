// Vectorised row reductions (see vmath.h), written with GCC vector extensions so that
// each SCORE_CLONES clone lowers the same 16-lane code to one zmm (AVX-512), two ymm
// (AVX2) or four xmm (baseline) operations.
#include "cpu/vmath.h"

#include <cmath>
#include <cstring>
#include <limits>

namespace score::cpu {

#if defined(__GNUC__)

// The 64-byte vector helpers below are always inlined into the clones, never called
// across an ABI boundary, so GCC's note that their calling convention depends on the ISA
// does not apply.
#pragma GCC diagnostic ignored "-Wpsabi"

namespace {

typedef float v16f __attribute__((vector_size(64)));
typedef int v16i __attribute__((vector_size(64)));
typedef float v8f __attribute__((vector_size(32)));
typedef double v8d __attribute__((vector_size(64)));

[[gnu::always_inline]] inline v16f splat(float k) { return v16f{} + k; }
[[gnu::always_inline]] inline v16f load16(const float* p) {
  v16f v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
[[gnu::always_inline]] inline void store16(float* p, const v16f& v) { std::memcpy(p, &v, sizeof v); }
// The two halves of a 16-lane float vector, widened to double.
[[gnu::always_inline]] inline v8d lo_pd(const v16f& v) {
  v8f h;
  std::memcpy(&h, &v, sizeof h);
  return __builtin_convertvector(h, v8d);
}
[[gnu::always_inline]] inline v8d hi_pd(const v16f& v) {
  v8f h;
  std::memcpy(&h, reinterpret_cast<const char*>(&v) + sizeof h, sizeof h);
  return __builtin_convertvector(h, v8d);
}
[[gnu::always_inline]] inline double hsum(const v8d& v) {
  double s = 0.0;
  for (int i = 0; i < 8; ++i) s += v[i];
  return s;
}

// 16 lanes of fexp (same algorithm and constants as the scalar fexp in vmath.h).
[[gnu::always_inline]] inline v16f vexp16(const v16f& xin) {
  v16f x = xin;
  x = x < splat(-87.0f) ? splat(-87.0f) : x;
  x = x > splat(88.0f) ? splat(88.0f) : x;
  const v16f n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
  const v16f r = (x - n * 0.693359375f) - n * -2.12194440e-4f;
  v16f p = splat(1.9875691500e-4f);
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const v16i bits = (__builtin_convertvector(n, v16i) + 127) << 23;
  v16f scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}

}  // namespace

SCORE_CLONES float vmax_f32(const float* x, size_t n) {
  size_t i = 0;
  float m = -std::numeric_limits<float>::infinity();
  if (n >= 16) {
    v16f mv = load16(x);
    for (i = 16; i + 16 <= n; i += 16) {
      const v16f v = load16(x + i);
      mv = v > mv ? v : mv;
    }
    for (int j = 0; j < 16; ++j) m = mv[j] > m ? mv[j] : m;
  }
  for (; i < n; ++i) m = x[i] > m ? x[i] : m;
  return m;
}

SCORE_CLONES double vexp_sum_f32(float* x, size_t n, float shift, double* sum_ez) {
  v8d s0{}, s1{}, z0{}, z1{};
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const v16f z = load16(x + i) - shift;
    const v16f e = vexp16(z);
    store16(x + i, e);
    s0 += lo_pd(e);
    s1 += hi_pd(e);
    const v16f ez = e * z;
    z0 += lo_pd(ez);
    z1 += hi_pd(ez);
  }
  double s = hsum(s0 + s1), sez = hsum(z0 + z1);
  for (; i < n; ++i) {
    const float z = x[i] - shift, e = fexp(z);
    x[i] = e;
    s += e;
    sez += static_cast<double>(e) * z;
  }
  if (sum_ez) *sum_ez = sez;
  return s;
}

SCORE_CLONES double vdot_f32(const float* a, const float* b, size_t n) {
  v8d s0{}, s1{};
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const v16f p = load16(a + i) * load16(b + i);
    s0 += lo_pd(p);
    s1 += hi_pd(p);
  }
  double s = hsum(s0 + s1);
  for (; i < n; ++i) s += a[i] * b[i];
  return s;
}

SCORE_CLONES void vweighted_sum_f32(float* o, const float* w, const float* v, size_t n, size_t d,
                                    size_t ld) {
  size_t c = 0;
  for (; c + 64 <= d; c += 64) {  // four 16-lane accumulators stay in registers over t
    v16f a0{}, a1{}, a2{}, a3{};
    for (size_t t = 0; t < n; ++t) {
      const float* r = v + t * ld + c;
      const v16f wt = splat(w[t]);
      a0 += wt * load16(r);
      a1 += wt * load16(r + 16);
      a2 += wt * load16(r + 32);
      a3 += wt * load16(r + 48);
    }
    store16(o + c, a0);
    store16(o + c + 16, a1);
    store16(o + c + 32, a2);
    store16(o + c + 48, a3);
  }
  for (; c + 16 <= d; c += 16) {
    v16f a{};
    for (size_t t = 0; t < n; ++t) a += splat(w[t]) * load16(v + t * ld + c);
    store16(o + c, a);
  }
  for (; c < d; ++c) {
    float a = 0.0f;
    for (size_t t = 0; t < n; ++t) a += w[t] * v[t * ld + c];
    o[c] = a;
  }
}

#else  // portable scalar versions (compilers without GCC vector extensions)

float vmax_f32(const float* x, size_t n) {
  float m = -std::numeric_limits<float>::infinity();
  for (size_t i = 0; i < n; ++i) m = x[i] > m ? x[i] : m;
  return m;
}
double vexp_sum_f32(float* x, size_t n, float shift, double* sum_ez) {
  double s = 0.0, sez = 0.0;
  for (size_t i = 0; i < n; ++i) {
    const float z = x[i] - shift, e = fexp(z);
    x[i] = e;
    s += e;
    sez += static_cast<double>(e) * z;
  }
  if (sum_ez) *sum_ez = sez;
  return s;
}
double vdot_f32(const float* a, const float* b, size_t n) {
  double s = 0.0;
  for (size_t i = 0; i < n; ++i) s += a[i] * b[i];
  return s;
}
void vweighted_sum_f32(float* o, const float* w, const float* v, size_t n, size_t d, size_t ld) {
  for (size_t c = 0; c < d; ++c) {
    float a = 0.0f;
    for (size_t t = 0; t < n; ++t) a += w[t] * v[t * ld + c];
    o[c] = a;
  }
}

#endif

}  // namespace score::cpu
