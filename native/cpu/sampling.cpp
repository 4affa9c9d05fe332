// Token sampling: see sampling.h for the contract. Outline of sample_row:
//   1. m = max(logits)                                        (vectorised pass)
//   2. q[i] = exp((x[i] - m) / T) into scratch, block sums and Z = sum q in
//      double; Z1 = sum exp(x[i] - m) for logp when T != 1    (vectorised pass)
//   3. one u = rng.uniform()
//   4. no truncation: the inverse CDF over q in index order; the block sums of
//      step 2 let the walk skip whole blocks.
//   5. truncation finds the lowest-ranked kept token b (ranking: logit desc,
//      index asc); the kept set is every token ranked at or above b. Its mass
//      S is summed in index order by blocks, and the inverse CDF walks it:
//      over the list of kept tokens (collected in index order) when there are
//      few, over the row with that predicate when there are many.
//        top-k: for k <= 512 a streaming filter (one pass: only tokens
//               above the running k-th best enter a buffer of ~2k, which
//               nth_element compacts when full); above, b = the k-th token by
//               bracketed_select on counts;
//        top-p alone: b by bracketed_select on masses (target top_p * Z);
//        top-k then top-p: the k kept are collected (index order) and a
//               mass-weighted quickselect over them finds b.
//      bracketed_select: one vectorised pass of masked sums (or counts) at 12
//      probability levels 1, 1/4, 1/16, ... brackets the boundary between two
//      levels lo < hi; everything with q >= hi is kept (its weight summed
//      exactly), and only the band lo <= q < hi is collected and handed to a
//      weighted quickselect (finer grids first narrow a band that is large).
//   Nothing sorts the vocabulary: sorts are of a quickselect's final range
//   (<= 32 entries), of the <= 512 indices kept by a streaming top-k, and
//   the quickselect's guard against adversarial orders (then O(n log n)).
#include "cpu/sampling.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>

#include "cpu/vmath.h"
#include "score/errors.h"

namespace score::cpu {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();
// exp(d) for d below this is taken as 0 (fexp clamps rather than underflows;
// -inf logits must give exactly 0). Every q is therefore 0 or a normal float.
constexpr float kExpFloor = -87.0f;
// Relative tolerance of the top-p comparison (float rounding of q).
constexpr double kTopPTol = 1e-6;
// The exp pass keeps at most this many block sums (on the stack).
constexpr int kMaxBlocks = 512;
// Probability levels examined per vectorised pass.
constexpr int kLevels = 12;
// A band of candidates larger than this gets a finer grid of levels.
constexpr int kRefineMin = 2048;
// A kept set larger than V / kRowWalkFrac is drawn by passes over the row,
// a smaller one is collected first and drawn from the list.
constexpr int kRowWalkFrac = 8;
// Top-k up to this k streams (topk_stream); above, bracketed_select on counts.
constexpr int kStreamMax = 512;
// The quickselect sorts and walks ranges of at most this size.
constexpr int kSmall = 32;

// The ranking: higher logit first, lower index on ties. Keys are unique, so
// this is a strict total order and the top-r set of any r is unique.
struct Ahead {
  const float* x;
  bool operator()(int32_t a, int32_t b) const { return x[a] > x[b] || (x[a] == x[b] && a < b); }
};
// i is ranked at or above b.
inline bool at_or_above(const float* x, int32_t i, int32_t b) {
  return x[i] > x[b] || (x[i] == x[b] && i <= b);
}

typedef float v16f __attribute__((vector_size(64)));
typedef int32_t v16i __attribute__((vector_size(64)));

// max(x) (NaNs ignored); *nan = whether x holds a NaN. (Catching NaN here
// keeps it away from fexp, whose float-to-int step is undefined for NaN.)
SCORE_CLONES float row_max(const float* x, int n, bool* nan) {
  float m = -kInf;
  int bad = 0;
#pragma omp simd reduction(max : m) reduction(| : bad)
  for (int i = 0; i < n; i++) {
    m = x[i] > m ? x[i] : m;
    bad |= x[i] != x[i];
  }
  *nan = bad != 0;
  return m;
}

// exp of d with d <= 0; 0 below kExpFloor (computed, then selected, so that
// the loops stay branch-free and vectorise).
inline float exp_nonpos(float d) {
  const float e = fexp(d);
  return d < kExpFloor ? 0.0f : e;
}

// q[i] = exp((x[i] - m) * invT); returns sum q in double. Two loops (store,
// then sum) because GCC vectorises each on its own but not the fused one.
SCORE_CLONES double exp_block(const float* x, int n, float m, float invT, float* q) {
  for (int i = 0; i < n; i++) q[i] = exp_nonpos((x[i] - m) * invT);
  double s = 0.0;
#pragma omp simd reduction(+ : s)
  for (int i = 0; i < n; i++) s += static_cast<double>(q[i]);
  return s;
}

// sum exp(x[i] - m) in double, through a small stack buffer.
SCORE_CLONES double exp_sum(const float* x, int n, float m) {
  float buf[256];
  double s = 0.0;
  for (int i0 = 0; i0 < n; i0 += 256) {
    const int len = std::min(256, n - i0);
    for (int i = 0; i < len; i++) buf[i] = exp_nonpos(x[i0 + i] - m);
#pragma omp simd reduction(+ : s)
    for (int i = 0; i < len; i++) s += static_cast<double>(buf[i]);
  }
  return s;
}

// sum q[a[j]] in double (vectorised gathers where the target has them).
SCORE_CLONES double sum_q(const float* q, const int32_t* a, int n) {
  double s = 0.0;
#pragma omp simd reduction(+ : s)
  for (int j = 0; j < n; j++) s += static_cast<double>(q[a[j]]);
  return s;
}

// The masked sums below select in float into a small stack buffer, then sum
// the buffer in double: GCC vectorises both loops for AVX2 and AVX-512, but
// not a loop that selects in double.

// sum of q[i] over the entries i of list ranked at or above (xb, b).
SCORE_CLONES double kept_sum(const float* x, const float* q, const int32_t* list, int n, float xb,
                             int32_t b) {
  float buf[256];
  double s = 0.0;
  for (int j0 = 0; j0 < n; j0 += 256) {
    const int len = std::min(256, n - j0);
    for (int j = 0; j < len; j++) {
      const int32_t i = list[j0 + j];
      const float xi = x[i];
      buf[j] = (xi > xb) | ((xi == xb) & (i <= b)) ? q[i] : 0.0f;
    }
#pragma omp simd reduction(+ : s)
    for (int j = 0; j < len; j++) s += static_cast<double>(buf[j]);
  }
  return s;
}

// sum of q[i] over i in [lo, lo + n) ranked at or above (xb, b).
SCORE_CLONES double kept_sum_row(const float* x, const float* q, int lo, int n, float xb, int32_t b) {
  float buf[256];
  double s = 0.0;
  for (int i0 = lo; i0 < lo + n; i0 += 256) {
    const int len = std::min(256, lo + n - i0);
    for (int j = 0; j < len; j++) {
      const int i = i0 + j;
      buf[j] = (x[i] > xb) | ((x[i] == xb) & (i <= b)) ? q[i] : 0.0f;
    }
#pragma omp simd reduction(+ : s)
    for (int j = 0; j < len; j++) s += static_cast<double>(buf[j]);
  }
  return s;
}

// sum of v[i] over v[i] >= t, in double; *count = how many.
SCORE_CLONES double mass_at_least(const float* v, int n, float t, int* count) {
  float buf[256];
  double s = 0.0;
  int c = 0;
  for (int i0 = 0; i0 < n; i0 += 256) {
    const int len = std::min(256, n - i0);
    for (int j = 0; j < len; j++) {
      buf[j] = v[i0 + j] >= t ? v[i0 + j] : 0.0f;
      c += v[i0 + j] >= t;
    }
#pragma omp simd reduction(+ : s)
    for (int j = 0; j < len; j++) s += static_cast<double>(buf[j]);
  }
  *count = c;
  return s;
}

// #{i : v[i] >= t}.
SCORE_CLONES int count_at_least(const float* v, int n, float t) {
  int s = 0;
#pragma omp simd reduction(+ : s)
  for (int i = 0; i < n; i++) s += v[i] >= t;
  return s;
}

// Whether any of v[0..64) exceeds thr, so that long runs below a threshold
// cost little. Plain loops: the vectoriser turns them into a few compares in
// each clone (GCC's generic vectors, once inlined here, came out scalar).
inline bool block_hit(const float* v, float thr) {
  int any = 0;
  for (int j = 0; j < 64; j++) any |= v[j] > thr;
  return any != 0;
}

// First j in [0, n) with v[j] > thr, or n.
SCORE_CLONES int next_above(const float* v, int n, float thr) {
  int i = 0;
  while (i + 64 <= n && !block_hit(v + i, thr)) i += 64;
  for (; i < n; i++)
    if (v[i] > thr) return i;
  return n;
}

// Every j in [0, n) with lo <= v[j] < hi, in order, into out; returns the
// count. Each chunk of 32 becomes a bit mask (a loop that GCC vectorises into
// a few compares), whose set bits are then written out one by one.
SCORE_CLONES int collect_range(const float* v, int n, float lo, float hi, int32_t* out) {
  int c = 0, i = 0;
  for (; i + 32 <= n; i += 32) {
    uint32_t mask = 0;
    for (int j = 0; j < 32; j++)
      mask |= static_cast<uint32_t>((v[i + j] >= lo) & (v[i + j] < hi)) << j;
    for (; mask != 0; mask &= mask - 1) out[c++] = i + __builtin_ctz(mask);
  }
  for (; i < n; i++) {
    out[c] = i;
    c += (v[i] >= lo) & (v[i] < hi);
  }
  return c;
}

// Every i in [0, n) ranked at or above b, in order, into out; returns the count.
SCORE_CLONES int collect_ranked(const float* x, int n, int32_t b, int32_t* out) {
  const float xb = x[b];
  int c = 0, i = 0;
  for (; i + 32 <= n; i += 32) {
    uint32_t mask = 0;
    for (int j = 0; j < 32; j++)
      mask |= static_cast<uint32_t>((x[i + j] > xb) | ((x[i + j] == xb) & (i + j <= b))) << j;
    for (; mask != 0; mask &= mask - 1) out[c++] = i + __builtin_ctz(mask);
  }
  for (; i < n; i++) {
    out[c] = i;
    c += (x[i] > xb) | ((x[i] == xb) & (i <= b));
  }
  return c;
}

// Streaming top-k for small k: indices of the k highest-ranked tokens with a
// logit above -inf, into buf (unordered); returns their count (min(k,
// #finite)). Only tokens above the current threshold enter the buffer (cap >
// k entries); whenever it fills, nth_element keeps the best k and the k-th
// logit becomes the threshold. A later token tying the threshold has a higher
// index, so it ranks below all k kept and may be skipped. Blocks of 64 with
// nothing above the threshold cost one vectorised test.
SCORE_CLONES int topk_stream(const float* x, int V, int k, int32_t* buf, int cap) {
  const Ahead ahead{x};
  int n = 0;
  float thr = -kInf;
  for (int i = 0; i < V; i += 64) {
    const int end = std::min(V, i + 64);
    if (end - i == 64 && !block_hit(x + i, thr)) continue;
    for (int j = i; j < end; j++) {
      if (!(x[j] > thr)) continue;
      buf[n++] = j;
      if (n == cap) {
        std::nth_element(buf, buf + (k - 1), buf + n, ahead);
        n = k;
        thr = x[buf[k - 1]];
      }
    }
  }
  if (n > k) {
    std::nth_element(buf, buf + (k - 1), buf + n, ahead);
    n = k;
  }
  return n;
}

// out[j] = sum of q[i] over q[i] >= thr[j] (j < kLevels), in one vectorised
// pass. Float lanes (each sums n/16 terms), so an estimate with relative error
// under ~n * 4e-9; callers allow a margin and decide with exact sums.
SCORE_CLONES void level_mass(const float* q, int n, const float* thr, double* out) {
  v16f acc[kLevels];
  for (v16f& a : acc) a = v16f{};
  int i = 0;
  for (; i + 16 <= n; i += 16) {
    v16f v;
    std::memcpy(&v, q + i, sizeof v);
    for (int j = 0; j < kLevels; j++) {
      const v16i keep = v >= thr[j];
      acc[j] += reinterpret_cast<v16f>(reinterpret_cast<v16i>(v) & keep);
    }
  }
  for (int j = 0; j < kLevels; j++) {
    double s = 0.0;
    for (int l = 0; l < 16; l++) s += acc[j][l];
    for (int t = i; t < n; t++)
      if (q[t] >= thr[j]) s += q[t];
    out[j] = s;
  }
}

// out[j] = #{i : q[i] >= thr[j]} (j < kLevels), in one vectorised pass; exact.
SCORE_CLONES void level_count(const float* q, int n, const float* thr, int64_t* out) {
  v16i acc[kLevels];
  for (v16i& a : acc) a = v16i{};
  int i = 0;
  for (; i + 16 <= n; i += 16) {
    v16f v;
    std::memcpy(&v, q + i, sizeof v);
    for (int j = 0; j < kLevels; j++) acc[j] -= v >= thr[j];  // true is -1
  }
  for (int j = 0; j < kLevels; j++) {
    int64_t s = 0;
    for (int l = 0; l < 16; l++) s += acc[j][l];
    for (int t = i; t < n; t++) s += q[t] >= thr[j];
    out[j] = s;
  }
}

// Brackets a boundary between probability levels thr[0] > thr[1] > ... (j <
// kLevels). The weight of a level is the mass (kMass) or the number of tokens
// with q >= the level. Sets lo = the highest level whose weight reaches the
// target (0 if none) and hi = the lowest level above it whose weight is below
// (kInf if none); returns an estimate (an upper bound for masses) of the number
// of tokens with lo <= q < hi. Masses are float estimates: margins of 2e-3 on
// each side, and the callers decide with exact sums. Counts are exact.
template <bool kMass>
double bracket(const float* q, int n, const float* thr, double target, float* lo, float* hi) {
  double w[kLevels];
  if (kMass) {
    level_mass(q, n, thr, w);
  } else {
    int64_t c[kLevels];
    level_count(q, n, thr, c);
    for (int j = 0; j < kLevels; j++) w[j] = static_cast<double>(c[j]);
  }
  const double want_hi = kMass ? target * (1.0 - 2e-3) : target;
  const double want_lo = kMass ? target * (1.0 + 2e-3) : target;
  *hi = kInf;
  *lo = 0.0f;
  double whi = 0.0;
  int j = 0;
  for (; j < kLevels && w[j] < want_hi; j++) {
    *hi = thr[j];
    whi = w[j];
  }
  while (j < kLevels && w[j] < want_lo) j++;
  if (j == kLevels) return n;
  *lo = thr[j];
  return kMass ? (w[j] - whi) / thr[j] : w[j] - whi;
}

// Levels from hi down to lo (both included), geometric.
void grid(float hi, float lo, float* thr) {
  const float ratio = std::pow(lo / hi, 1.0f / (kLevels - 1));
  for (int j = 0; j < kLevels; j++) thr[j] = hi * std::pow(ratio, static_cast<float>(j));
  thr[0] = hi;
  thr[kLevels - 1] = lo;
}

// The smallest prefix of the ranking of the entries a[0..n) whose weight (q
// for kMass, else 1 per entry) reaches target: returns its lowest-ranked entry
// and its weight. When the whole set falls short, all of it (weight < target).
// a[0..n) and tmp[0..n) are clobbered.
//
// A quickselect: the pivot is the median of three entries at pseudo-random
// places (a fixed hash, not the caller's generator); each round partitions the
// range into the other buffer, stably and without branches (entries above the
// pivot forward from the start, the rest backward from the end), so entries
// stay in monotone index order and the x[] reads stream; the weight of the
// upper side decides which side holds the boundary. Expected O(n); after too
// many rounds (adversarial orders) the rest is sorted, so O(n log n) at worst.
// Keys are unique, so the result does not depend on the pivots.
struct Prefix {
  int32_t last;  // -1 for an empty set
  double weight;
  int count;     // entries in the prefix
};
template <bool kMass>
Prefix select_prefix(const float* x, const float* q, int32_t* a, int32_t* tmp, int n, double target) {
  const Ahead ahead{x};
  int32_t *cur = a, *oth = tmp;
  int lo = 0, hi = n;   // cur[lo..hi) holds the boundary; everything ranked above it is kept
  double acc = 0.0;     // weight of the kept entries ranked above the range
  int32_t last = -1;    // lowest-ranked of those
  int kept = 0;         // and their number
  int budget = 16;
  for (int m = n; m > 1; m >>= 1) budget += 2;
  uint64_t h = 0x9e3779b97f4a7c15ull ^ static_cast<uint64_t>(n);
  while (hi - lo > kSmall && budget-- > 0) {
    const uint64_t len = static_cast<uint64_t>(hi - lo);
    h = h * 6364136223846793005ull + 1442695040888963407ull;
    uint64_t z = (h ^ (h >> 29)) * 0xbf58476d1ce4e5b9ull;
    z ^= z >> 32;
    int i0 = lo + static_cast<int>(((z >> 43) * len) >> 21);
    int i1 = lo + static_cast<int>((((z >> 22) & 0x1fffff) * len) >> 21);
    int i2 = lo + static_cast<int>(((z & 0x1fffff) * len) >> 21);
    if (ahead(cur[i1], cur[i0])) std::swap(i0, i1);
    if (ahead(cur[i2], cur[i1])) std::swap(i1, i2);
    if (ahead(cur[i1], cur[i0])) std::swap(i0, i1);  // cur[i0], cur[i1], cur[i2] in rank order
    const int32_t piv = cur[i1];
    const float xp = x[piv];
    int u = lo, d = hi, ppos = hi - 1;
    for (int j = lo; j < hi; j++) {
      const int32_t v = cur[j];
      const bool up = x[v] > xp || (x[v] == xp && v < piv);
      oth[u] = v;
      oth[d - 1] = v;
      ppos = v == piv ? d - 1 : ppos;
      u += up;
      d -= !up;
    }
    std::swap(cur, oth);  // upper side cur[lo..u), the rest cur[u..hi) with the pivot at ppos
    const double wu = kMass ? sum_q(q, cur + lo, u - lo) : static_cast<double>(u - lo);
    if (acc + wu >= target) {
      hi = u;
      continue;
    }
    const double wp = kMass ? static_cast<double>(q[piv]) : 1.0;
    acc += wu + wp;
    last = piv;
    kept += u - lo + 1;
    if (acc >= target) return {piv, acc, kept};
    std::swap(cur[ppos], cur[u]);
    lo = u + 1;
  }
  std::sort(cur + lo, cur + hi, ahead);
  for (int j = lo; j < hi; j++) {
    acc += kMass ? static_cast<double>(q[cur[j]]) : 1.0;
    last = cur[j];
    kept++;
    if (acc >= target) break;
  }
  return {last, acc, kept};
}

// Block layout of the exp pass: nb blocks of bsize (the last one shorter).
struct Blocks {
  int bsize, nb;
  explicit Blocks(int V) {
    const int per = (V + kMaxBlocks - 1) / kMaxBlocks;
    bsize = std::max(256, (per + 15) / 16 * 16);
    nb = (V + bsize - 1) / bsize;
  }
};

// The kept tokens are the entries of list (index order) ranked at or above b
// (all of them for b < 0). Sums their mass S in index order, by blocks, then
// returns the inverse CDF of u: the first kept token whose cumulative mass
// exceeds u * S, skipping whole blocks by their sums (if rounding leaves none,
// the last kept token with q > 0 of the block, or of the list).
int32_t draw_from_list(const float* x, const float* q, const int32_t* list, int n, int32_t b,
                       double u, double* S) {
  const float xb = b >= 0 ? x[b] : -kInf;
  const int32_t bi = b >= 0 ? b : std::numeric_limits<int32_t>::max();
  auto kept = [&](int32_t i) { return q[i] > 0.0f && (x[i] > xb || (x[i] == xb && i <= bi)); };
  const Blocks blk(n);
  double bs[kMaxBlocks];
  double s = 0.0;
  for (int k = 0; k < blk.nb; k++) {
    const int lo = k * blk.bsize;
    bs[k] = kept_sum(x, q, list + lo, std::min(blk.bsize, n - lo), xb, bi);
    s += bs[k];
  }
  *S = s;
  const double target = u * s;
  double cum = 0.0;
  int k = 0;
  while (k < blk.nb && !(cum + bs[k] > target)) cum += bs[k++];
  if (k < blk.nb) {
    const int lo = k * blk.bsize, hi = std::min(n, lo + blk.bsize);
    for (int j = lo; j < hi; j++) {
      const int32_t i = list[j];
      if (!kept(i)) continue;
      cum += q[i];
      if (cum > target) return i;
    }
    for (int j = hi - 1; j >= lo; j--)
      if (kept(list[j])) return list[j];
  }
  for (int j = n - 1; j >= 0; j--)
    if (kept(list[j])) return list[j];
  return -1;
}

// As draw_from_list, over the whole row (for large kept sets): the kept
// tokens are those ranked at or above b, and their block sums come from a
// vectorised pass over the row.
int32_t draw_from_row(const float* x, const float* q, int V, int32_t b, double u, double* S) {
  const float xb = x[b];
  auto kept = [&](int32_t i) { return q[i] > 0.0f && (x[i] > xb || (x[i] == xb && i <= b)); };
  const Blocks blk(V);
  double bs[kMaxBlocks];
  double s = 0.0;
  for (int k = 0; k < blk.nb; k++) {
    const int lo = k * blk.bsize;
    bs[k] = kept_sum_row(x, q, lo, std::min(blk.bsize, V - lo), xb, b);
    s += bs[k];
  }
  *S = s;
  const double target = u * s;
  double cum = 0.0;
  int k = 0;
  while (k < blk.nb && !(cum + bs[k] > target)) cum += bs[k++];
  if (k < blk.nb) {
    const int lo = k * blk.bsize, hi = std::min(V, lo + blk.bsize);
    for (int i = lo; i < hi; i++) {
      if (!kept(i)) continue;
      cum += q[i];
      if (cum > target) return i;
    }
    for (int i = hi - 1; i >= lo; i--)
      if (kept(i)) return i;
  }
  for (int i = V - 1; i >= 0; i--)
    if (kept(i)) return i;
  return -1;
}

// The lowest-ranked token b of the smallest prefix of the ranking whose weight
// (q for kMass, else 1 per token) reaches target > 0, and (*kept) the size of
// that prefix; for counts, -1 when fewer than target tokens have q > 0.
//
// Probability levels bracket the boundary: tokens with q >= hi are all kept
// (set A, whose weight a vectorised pass sums exactly), the boundary lies
// among those with lo <= q < hi (set B, collected), and the quickselect runs
// on B only. Round one puts levels 1, 1/4, ..., 4^-10 and then 4^-11 (mass)
// or the least normal float (counts: q > 0) over the row. While B would hold
// more than an eighth of the row, finer grids between hi and lo go over the
// row again (flat distributions); once collected, a B still large gets one
// finer grid over its own members. Masses are estimates: exact sums decide,
// with fallbacks when an estimate misled (hi := kInf; then lo := 0 as well,
// so that B is every token). Work buffers: qc (V floats), W1 and W2 (V
// indices each).
template <bool kMass>
int32_t bracketed_select(const float* x, const float* q, int V, double target, float* qc,
                         int32_t* W1, int32_t* W2, int* kept) {
  float thr[kLevels];
  for (int j = 0; j < kLevels; j++) thr[j] = std::ldexp(1.0f, -2 * j);
  if (!kMass) thr[kLevels - 1] = std::numeric_limits<float>::min();
  float lo, hi;
  double band = bracket<kMass>(q, V, thr, target, &lo, &hi);
  if (!kMass && lo == 0.0f) return -1;
  for (int round = 0; round < 3 && lo > 0.0f && hi != kInf && band > std::max(kRefineMin, V / 8);
       round++) {
    grid(hi, lo, thr);
    float lo2, hi2;
    band = bracket<kMass>(q, V, thr, target, &lo2, &hi2);
    if (lo2 == 0.0f || hi2 == kInf) break;  // estimates moved at the ends: keep the bracket
    lo = lo2;
    hi = hi2;
  }
  int na = 0;  // |A|
  auto weight_at_least = [&na](const float* v, int n, float t) {
    int c;
    const double w = kMass ? mass_at_least(v, n, t, &c) : (c = count_at_least(v, n, t));
    na += c;
    return w;
  };
  for (;;) {
    // B = {lo <= q < hi} into W1 (index order); the exact weight of A = {q >= hi}.
    int nb = collect_range(q, V, lo, hi, W1);
    na = 0;
    double wa = hi != kInf ? weight_at_least(q, V, hi) : 0.0;
    if (nb > kRefineMin && hi != kInf && lo > 0.0f && wa < target) {
      for (int j = 0; j < nb; j++) qc[j] = q[W1[j]];
      grid(hi, lo, thr);
      float lo2, hi2;
      bracket<kMass>(qc, nb, thr, target - wa, &lo2, &hi2);
      lo = std::max(lo, lo2);
      hi = std::min(hi, hi2);
      wa += weight_at_least(qc, nb, hi);  // B's members that moved up into A
      int m = 0;
      for (int j = 0; j < nb; j++) {
        W1[m] = W1[j];
        m += (qc[j] >= lo) & (qc[j] < hi);
      }
      nb = m;
    }
    // An estimate misled when A alone reaches the target (then: A joins B) or
    // A and B fall short (then: every token); only masses can mislead.
    if (wa >= target) {
      hi = kInf;
      continue;
    }
    const Prefix pb = select_prefix<kMass>(x, q, W1, W2, nb, target - wa);
    if (wa + pb.weight < target && lo > 0.0f) {
      lo = 0.0f;
      hi = kInf;
      continue;
    }
    SCORE_CHECK(pb.last >= 0, Internal, "sample_row: truncation kept no token");
    *kept = na + pb.count;
    return pb.last;
  }
}

[[noreturn]] void bad_logits(const char* what) {
  // the model's own numbers went bad (non-finite weights or activations), not the caller's input
  throw Error(ErrorCode::Numeric, std::string("sample_row: ") + what);
}

// Checks the row through its max m and NaN flag: throws on NaN, +inf, or no
// finite logit at all.
void check_logits(float m, bool nan) {
  if (nan) bad_logits("logits contain NaN");
  if (m == kInf) bad_logits("logits contain +inf");
  if (!(m > -kInf)) bad_logits("logits have no finite value (all -inf)");
}

}  // namespace

void validate_sampling(const SamplingParams& p) {
  SCORE_CHECK(p.temperature >= 0.0 && std::isfinite(p.temperature), InvalidArgument,
              "temperature must be >= 0 and finite (got " + std::to_string(p.temperature) + ")");
  SCORE_CHECK(p.top_k >= 0, InvalidArgument, "top_k must be >= 0 (got " + std::to_string(p.top_k) + ")");
  SCORE_CHECK(p.top_p > 0.0 && p.top_p <= 1.0, InvalidArgument,
              "top_p must be in (0, 1] (got " + std::to_string(p.top_p) + ")");
}

SampleResult sample_row(const float* logits, int V, const SamplingParams& p, score::Rng& rng,
                        SampleScratch& scratch) {
  validate_sampling(p);
  SCORE_CHECK(V >= 1 && logits != nullptr, InvalidArgument,
              "sample_row: need a row of V >= 1 logits (got V = " + std::to_string(V) + ")");
  const float* x = logits;
  const Blocks blk(V);
  bool nan = false;
  const float m = row_max(x, V, &nan);
  check_logits(m, nan);

  SampleResult res{};
  if (p.temperature == 0.0) {
    // Greedy: the first index holding the maximum; no randomness.
    const int32_t t = next_above(x, V, std::nextafter(m, -kInf));  // the first x == m
    double z1 = 0.0;
    for (int b = 0; b < blk.nb; b++) {
      const int lo = b * blk.bsize;
      z1 += exp_sum(x + lo, std::min(blk.bsize, V - lo), m);
    }
    res.token = t;
    res.logp = static_cast<float>(static_cast<double>(x[t]) - m - std::log(z1));
    res.logp_sampling = 0.0f;
    return res;
  }

  const size_t Vs = static_cast<size_t>(V);
  if (scratch.probs.size() < 2 * Vs) scratch.probs.resize(2 * Vs);
  if (scratch.idx.size() < 3 * Vs) scratch.idx.resize(3 * Vs);
  float* q = scratch.probs.data();     // q (V), then the candidates' q (V)
  int32_t* C = scratch.idx.data();     // candidates (V), then two work buffers (V each)
  int32_t* W1 = C + Vs;
  int32_t* W2 = W1 + Vs;

  // Temperature, clamped so that 1/T stays a finite, nonzero float.
  const float invT = static_cast<float>(std::min(1e30, std::max(1e-30, 1.0 / p.temperature)));
  const bool unit_t = p.temperature == 1.0;
  double bsum[kMaxBlocks];
  double Z = 0.0, z1 = 0.0;
  for (int b = 0; b < blk.nb; b++) {
    const int lo = b * blk.bsize, len = std::min(blk.bsize, V - lo);
    bsum[b] = exp_block(x + lo, len, m, invT, q + lo);
    Z += bsum[b];
    if (!unit_t) z1 += exp_sum(x + lo, len, m);
  }
  if (unit_t) z1 = Z;

  const double u = rng.uniform();  // the one draw of this sample
  bool use_k = p.top_k > 0 && p.top_k < V;
  const bool use_p = p.top_p < 1.0;
  int32_t tok = -1;
  double S = Z;  // mass of the kept set

  float* qc = q + Vs;
  if (use_k) {
    const int k = p.top_k;
    int n = 0;
    int32_t bk = -1;
    if (k <= kStreamMax) {
      n = topk_stream(x, V, k, C, static_cast<int>(std::min<int64_t>(V, 2 * k + 256)));
      std::sort(C, C + n);  // the kept, in index order
    } else {
      bk = bracketed_select<false>(x, q, V, k, qc, W1, W2, &n);
      if (bk < 0) use_k = false;  // at most k tokens have nonzero probability: top-k changes nothing
    }
    if (!use_k) {
    } else if (bk >= 0 && !use_p && n > V / kRowWalkFrac) {
      tok = draw_from_row(x, q, V, bk, u, &S);
    } else {
      if (bk >= 0) n = collect_ranked(x, V, bk, C);  // the k kept, in index order
      int32_t b = -1;
      if (use_p) {
        const double SK = sum_q(q, C, n);
        std::copy(C, C + n, W1);
        b = select_prefix<true>(x, q, W1, W2, n, p.top_p * SK * (1.0 - kTopPTol)).last;
      }
      tok = draw_from_list(x, q, C, n, b, u, &S);
    }
  }

  if (!use_k && !use_p) {
    // Plain sampling: skip whole blocks by their sums, then walk one block.
    const double target = u * Z;
    double cum = 0.0;
    int b = 0;
    while (b < blk.nb && !(cum + bsum[b] > target)) cum += bsum[b++];
    if (b < blk.nb) {
      const int lo = b * blk.bsize, hi = std::min(V, lo + blk.bsize);
      for (int i = lo; i < hi && tok < 0; i++) {
        cum += q[i];
        if (cum > target && q[i] > 0.0f) tok = i;
      }
      if (tok < 0)  // rounding: the block's walk summed a hair below its block sum
        for (int i = hi - 1; i >= lo && tok < 0; i--)
          if (q[i] > 0.0f) tok = i;
    }
    if (tok < 0)  // rounding: u * Z at the very top
      for (int i = V - 1; i >= 0 && tok < 0; i--)
        if (q[i] > 0.0f) tok = i;
  } else if (!use_k) {
    // Top-p alone.
    int n = 0;
    const int32_t b = bracketed_select<true>(x, q, V, p.top_p * Z * (1.0 - kTopPTol), qc, W1, W2, &n);
    if (n > V / kRowWalkFrac) {
      tok = draw_from_row(x, q, V, b, u, &S);
    } else {
      n = collect_ranked(x, V, b, C);  // the kept, in index order
      tok = draw_from_list(x, q, C, n, -1, u, &S);
    }
  }

  res.token = tok;
  res.logp = static_cast<float>(static_cast<double>(x[tok]) - m - std::log(z1));
  res.logp_sampling = static_cast<float>(std::log(static_cast<double>(q[tok])) - std::log(S));
  return res;
}

}  // namespace score::cpu
