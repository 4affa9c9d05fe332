// GEMM kernel lab: every sgemm variant this CPU can run (and OpenBLAS's cblas_sgemm and
// oneDNN's dnnl_sgemm when linked), at the model's shapes, each checked against a naive double-precision reference and
// timed side by side. A plain C++ program; see bench/kernels/README.md for build and flags.
//
// Forms, as a linear layer uses them (the same definitions as native/cpu/gemm_bench.cpp and
// `score-rl bench gemm`), with M, N, K the product's own sizes:
//   nt  forward   Y (M, N)  = X (M, K) @ W^T     W stored (N, K)
//   nn  d-input   dX (M, N) = dY (M, K) @ W      W stored (K, N)
//   tn  d-weight  dW (M, N) = dY^T @ X           dY stored (K, M): A read transposed
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "cpu/gemm.h"
#include "cpu/packed_linear.h"

#ifdef SCORE_GEMM_LAB_HAVE_OPENBLAS
#include <cblas.h>
#endif
#ifdef SCORE_GEMM_LAB_HAVE_DNNL
#include <oneapi/dnnl/dnnl.h>
#endif

namespace {

using score::cpu::GemmIsa;

// ---- shapes ----

struct Shape {
  std::string what;  // which product of the model this is
  int M, N, K;
  std::string form;  // nt | nn | tn
};

// The forward layers of the model as (K, N) = (in, out): small fc and proj (d 384), gpt2 fc and
// proj (d 768), the gpt2 lm_head. Each gives the three products of a training step at M = B*T.
std::vector<Shape> model_shapes() {
  const int M = 2048;
  struct Layer { int K, N; const char* name; };
  const Layer layers[] = {{384, 1536, "small fc"},  {1536, 384, "small proj"},
                          {768, 3072, "gpt2 fc"},   {3072, 768, "gpt2 proj"},
                          {768, 50304, "gpt2 lm_head"}};
  std::vector<Shape> v;
  for (const Layer& l : layers) {
    v.push_back({std::string(l.name) + " fwd", M, l.N, l.K, "nt"});
    v.push_back({std::string(l.name) + " d-input", M, l.K, l.N, "nn"});
    v.push_back({std::string(l.name) + " d-weight", l.N, l.K, M, "tn"});
  }
  return v;
}

// Decode: one new token per sequence, so only the forward (nt) form; M = batch.
std::vector<Shape> decode_shapes() {
  std::vector<Shape> v;
  for (int M : {1, 4, 8, 16, 32}) v.push_back({"decode fc", M, 1536, 384, "nt"});
  v.push_back({"decode lm_head", 16, 8192, 384, "nt"});
  return v;
}

// Operand storage and strides for a form (element (i, k) of A is A[i*a_rs + k*a_cs], etc.).
struct Operands {
  std::vector<float> A, B;
  ptrdiff_t a_rs, a_cs, b_rs, b_cs;
};

Operands make_operands(const Shape& s, unsigned seed) {
  Operands o;
  const bool ta = s.form == "tn", tb = s.form == "nt";
  o.a_rs = ta ? 1 : s.K, o.a_cs = ta ? s.M : 1;
  o.b_rs = tb ? 1 : s.N, o.b_cs = tb ? s.K : 1;
  o.A.resize(static_cast<size_t>(s.M) * s.K);
  o.B.resize(static_cast<size_t>(s.K) * s.N);
  // Uniform in [-1, 1): random signs, so a wrong term cannot hide in a sum that only grows.
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  for (float& x : o.A) x = u(gen);
  for (float& x : o.B) x = u(gen);
  return o;
}

// ---- the naive reference ----

// Rows of C to check: all when the reference fits the budget (multiply-adds), else the first
// and last 16 (edge tiles of every row blocking: MR is 14, 6 or 4) and a random spread of the
// rest. Every column of a checked row is checked, so column edge tiles are always covered.
std::vector<int> rows_to_check(const Shape& s, double budget) {
  const double row_cost = static_cast<double>(s.N) * s.K;
  std::vector<int> rows;
  if (row_cost * s.M <= budget) {
    for (int i = 0; i < s.M; ++i) rows.push_back(i);
    return rows;
  }
  const int want = std::min(s.M, std::max(48, static_cast<int>(budget / row_cost)));
  std::vector<char> take(s.M, 0);
  for (int i = 0; i < std::min(16, s.M); ++i) take[i] = take[s.M - 1 - i] = 1;
  std::mt19937 gen(12345);
  std::uniform_int_distribution<int> pick(0, s.M - 1);
  for (int n = std::count(take.begin(), take.end(), 1); n < want;) {
    const int i = pick(gen);
    if (!take[i]) take[i] = 1, ++n;
  }
  for (int i = 0; i < s.M; ++i)
    if (take[i]) rows.push_back(i);
  return rows;
}

// ref[r * N + j] = sum_k A(i, k) B(k, j) in double for i = rows[r], and mag = sum_k |A(i,k) B(k,j)|,
// the scale that bounds a float dot product's rounding error. Plain triple loops; the loop
// order only follows B's contiguous direction so that the big shapes finish in seconds.
void reference(const Shape& s, const Operands& o, const std::vector<int>& rows,
               std::vector<double>& ref, std::vector<double>& mag) {
  const int N = s.N, K = s.K;
  ref.assign(rows.size() * N, 0.0);
  mag.assign(rows.size() * N, 0.0);
#pragma omp parallel for schedule(dynamic)
  for (size_t r = 0; r < rows.size(); ++r) {
    const int i = rows[r];
    std::vector<double> a(K);
    for (int k = 0; k < K; ++k) a[k] = o.A[i * o.a_rs + k * o.a_cs];
    double* c = &ref[r * N];
    double* m = &mag[r * N];
    if (o.b_rs == 1) {  // columns of B contiguous in k (nt): one dot product per column
      for (int j = 0; j < N; ++j) {
        const float* b = &o.B[static_cast<size_t>(j) * o.b_cs];
        double sum = 0, abs_sum = 0;
        for (int k = 0; k < K; ++k) {
          const double p = a[k] * b[k];
          sum += p, abs_sum += std::fabs(p);
        }
        c[j] = sum, m[j] = abs_sum;
      }
    } else {  // rows of B contiguous in j (nn, tn): axpy over k
      for (int k = 0; k < K; ++k) {
        const float* b = &o.B[static_cast<size_t>(k) * o.b_rs];
        const double ak = a[k];
        for (int j = 0; j < N; ++j) {
          const double p = ak * b[j * o.b_cs];
          c[j] += p, m[j] += std::fabs(p);
        }
      }
    }
  }
}

// Tolerance on |C - ref| / sum_k |a_ik b_kj| (the same bound as test/native/test_kernels.cpp).
// A float sum of random-sign products errs by about u = 6e-8 of that scale whatever K is
// (the partial sums grow like sqrt(k), and so does the accumulated rounding): the largest
// seen over these shapes' checked elements was 3.4e-7, OpenBLAS included. A dropped, doubled
// or misplaced term errs by about 1/K of the scale on average: 2e-5 at the largest K here
// (50304), 10x above the bound.
constexpr double kRelTol = 2e-6;

double max_rel_error(const Shape& s, const std::vector<float>& C, const std::vector<int>& rows,
                     const std::vector<double>& ref, const std::vector<double>& mag) {
  double worst = 0;
  for (size_t r = 0; r < rows.size(); ++r)
    for (int j = 0; j < s.N; ++j) {
      const double c = C[static_cast<size_t>(rows[r]) * s.N + j];
      const double e = std::fabs(c - ref[r * s.N + j]) / std::max(mag[r * s.N + j], 1e-30);
      if (!(e <= worst)) worst = e;  // a NaN (an element never written) sticks
      if (std::isnan(worst)) return worst;
    }
  return worst;
}

// ---- variants ----

struct Variant {
  std::string name;
  // Runs C = A B for the shape (C row-major, ldc = N, overwritten).
  std::function<void(const Shape&, const Operands&, float*)> run;
  std::function<bool(const Shape&)> applies;
  // Called once per shape before the check and the timing (nullable): untimed set-up.
  std::function<void(const Shape&, const Operands&)> prepare;
};

const int kDefaultSmallM = score::cpu::kGemmSmallM;  // the library's small-M limit

Variant ours(const std::string& name, GemmIsa isa, bool packed_only = false) {
  Variant v;
  v.name = name;
  // packed_only: the small-M (dot-product) path switched off (GemmIsa::Avx512Packed), so
  // that the packed blocked path runs the same decode product.
  const GemmIsa path = packed_only ? GemmIsa::Avx512Packed : isa;
  v.run = [path](const Shape& s, const Operands& o, float* C) {
    score::cpu::sgemm(s.M, s.N, s.K, o.A.data(), o.a_rs, o.a_cs, o.B.data(), o.b_rs, o.b_cs, C,
                      s.N, false, nullptr, path);
  };
  // The forced-packed variant only differs where the small-M path would apply: forward (nt)
  // products with few rows (gemm.cpp's use_small_m_path; K >= 16 holds for every shape here).
  v.applies = [packed_only](const Shape& s) {
    return !packed_only || (s.form == "nt" && s.M <= kDefaultSmallM);
  };
  return v;
}

// Generation's decode kernel on weights packed beforehand (packed_linear.h): the forward
// form with few rows only. The packing, done once per generate call, is not timed.
Variant packed_weights() {
  Variant v;
  v.name = "packed weights";
  auto packed = std::make_shared<score::cpu::PackedLinear>();
  // W (N, K) is B's storage in the nt form.
  v.prepare = [packed](const Shape& s, const Operands& o) { packed->pack(o.B.data(), s.N, s.K); };
  v.run = [packed](const Shape& s, const Operands& o, float* C) {
    packed->forward(C, o.A.data(), nullptr, s.M);
  };
  v.applies = [](const Shape& s) { return s.form == "nt" && s.M <= score::cpu::kPackedLinearMaxRows; };
  return v;
}

#ifdef SCORE_GEMM_LAB_HAVE_DNNL
Variant onednn() {
  Variant v;
  v.name = "onednn";
  v.run = [](const Shape& s, const Operands& o, float* C) {
    // dnnl_sgemm is row-major: a transposed operand is the stored matrix with 'T'.
    const bool ta = s.form == "tn", tb = s.form == "nt";
    dnnl_sgemm(ta ? 'T' : 'N', tb ? 'T' : 'N', s.M, s.N, s.K, 1.0f, o.A.data(), ta ? s.M : s.K,
               o.B.data(), tb ? s.K : s.N, 0.0f, C, s.N);
  };
  v.applies = [](const Shape&) { return true; };
  return v;
}
#endif

#ifdef SCORE_GEMM_LAB_HAVE_OPENBLAS
Variant openblas() {
  Variant v;
  v.name = "openblas";
  v.run = [](const Shape& s, const Operands& o, float* C) {
    // Row-major cblas: a transposed operand is the stored matrix with the Trans flag.
    const bool ta = s.form == "tn", tb = s.form == "nt";
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                s.M, s.N, s.K, 1.0f, o.A.data(), ta ? s.M : s.K, o.B.data(), tb ? s.K : s.N,
                0.0f, C, s.N);
  };
  v.applies = [](const Shape&) { return true; };
  return v;
}
#endif

// ---- timing ----

struct Timing {
  double median_ms, min_ms, max_ms;  // per call
};

double now_ms() {
  return std::chrono::duration<double, std::milli>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// `warmup` untimed calls, then `reps` samples. A decode product takes microseconds, so each
// sample runs the call `inner` times back to back (chosen so that a sample lasts >= 2 ms, where
// the clock and the loop cost nothing) and the per-call time is the sample over `inner`.
// `inner` comes from the fastest warm-up call, and short calls get up to 20 extra warm-up
// calls (until 20 ms are spent): on a shared machine one call can stall for a scheduler tick
// (4 ms), and sizing from that call would leave a decode sample at one unaveraged call.
Timing time_variant(const std::function<void()>& call, int reps, int warmup) {
  double t_min = std::numeric_limits<double>::infinity(), spent = 0;
  for (int w = 0; w < std::max(1, warmup) || (spent < 20.0 && w < warmup + 20); ++w) {
    const double t0 = now_ms();
    call();
    const double t = now_ms() - t0;
    t_min = std::min(t_min, t), spent += t;
  }
  const int inner = std::max(1, static_cast<int>(std::ceil(2.0 / std::max(t_min, 1e-6))));
  std::vector<double> ms;
  for (int r = 0; r < reps; ++r) {
    const double t0 = now_ms();
    for (int i = 0; i < inner; ++i) call();
    ms.push_back((now_ms() - t0) / inner);
  }
  std::sort(ms.begin(), ms.end());
  const size_t n = ms.size();
  const double median = n % 2 ? ms[n / 2] : 0.5 * (ms[n / 2 - 1] + ms[n / 2]);
  return {median, ms.front(), ms.back()};
}

// ---- command line ----

struct Options {
  std::string shapes = "all";
  int reps = 10, warmup = 2, threads = 0;
  bool quick = false;
  double ref_budget = 1.5e9;  // multiply-adds of the double reference per shape
  std::string variants;       // comma-separated names to run; empty: all
  bool wanted(const std::string& name) const {
    if (variants.empty()) return true;
    const std::string list = "," + variants + ",";
    return list.find("," + name + ",") != std::string::npos;
  }
};

[[noreturn]] void usage(int code) {
  std::fprintf(code ? stderr : stdout,
               "usage: gemm_lab [--shapes model|decode|all] [--reps N] [--threads N] [--quick]\n"
               "                [--variants NAME,NAME...]\n"
               "  --shapes   model: M = 2048, 3 forms of 5 layers; decode: M = 1..32 and the\n"
               "             lm_head at M = 16; all (default): both\n"
               "  --reps     timed samples per variant, median reported (default 10; --quick 3)\n"
               "  --threads  OpenMP threads for sgemm, OpenBLAS and oneDNN (default: OMP_NUM_THREADS or "
               "all cores)\n"
               "  --quick    3 samples after 1 warm-up call, a smaller sample of checked rows\n"
               "  --variants only these, by the names printed (e.g. 'auto,packed weights,onednn')\n"
               "Exit status: 0 when every variant is within tolerance, 1 if any FAILs, 2 on bad "
               "arguments.\n");
  std::exit(code);
}

Options parse(int argc, char** argv) {
  Options o;
  bool reps_set = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage(2);
      return argv[++i];
    };
    auto positive = [&](const std::string& v) {
      char* end = nullptr;
      const long n = std::strtol(v.c_str(), &end, 10);
      if (*end || n < 1 || n > 100000) usage(2);
      return static_cast<int>(n);
    };
    if (a == "--shapes") {
      o.shapes = value();
      if (o.shapes != "model" && o.shapes != "decode" && o.shapes != "all") usage(2);
    } else if (a == "--reps") {
      o.reps = positive(value()), reps_set = true;
    } else if (a == "--threads") {
      o.threads = positive(value());
    } else if (a == "--variants") {
      o.variants = value();
    } else if (a == "--quick") {
      o.quick = true;
    } else if (a == "--help" || a == "-h") {
      usage(0);
    } else {
      usage(2);
    }
  }
  if (o.quick) {
    if (!reps_set) o.reps = 3;
    o.warmup = 1;
    o.ref_budget = 2e8;
  }
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  const Options opt = parse(argc, argv);
  if (opt.threads > 0) omp_set_num_threads(opt.threads);
#ifdef SCORE_GEMM_LAB_HAVE_OPENBLAS
  if (opt.threads > 0) openblas_set_num_threads(opt.threads);
#endif
  const int threads = omp_get_max_threads();

  std::vector<Variant> variants;
  variants.push_back(ours("auto", GemmIsa::Auto));
  if (score::cpu::gemm_isa_supported(GemmIsa::Avx512)) {
    variants.push_back(ours("avx512", GemmIsa::Avx512));
    variants.push_back(ours("avx512 packed-only", GemmIsa::Avx512, true));
  }
  if (score::cpu::gemm_isa_supported(GemmIsa::Avx2)) variants.push_back(ours("avx2", GemmIsa::Avx2));
  variants.push_back(ours("generic", GemmIsa::Generic));
  if (score::cpu::packed_linear_supported()) variants.push_back(packed_weights());
#ifdef SCORE_GEMM_LAB_HAVE_OPENBLAS
  variants.push_back(openblas());
#endif
#ifdef SCORE_GEMM_LAB_HAVE_DNNL
  variants.push_back(onednn());
#endif

  // Every name in --variants must be one of this build's variants (a typo would run nothing).
  for (size_t at = 0; !opt.variants.empty() && at <= opt.variants.size();) {
    const size_t comma = std::min(opt.variants.find(',', at), opt.variants.size());
    const std::string name = opt.variants.substr(at, comma - at);
    if (std::none_of(variants.begin(), variants.end(), [&](const Variant& v) { return v.name == name; })) {
      std::string have;
      for (const Variant& v : variants) have += (have.empty() ? "" : ", ") + v.name;
      std::fprintf(stderr, "gemm_lab: --variants: no variant '%s' in this build (have: %s)\n", name.c_str(),
                   have.c_str());
      return 2;
    }
    at = comma + 1;
  }

  std::vector<Shape> shapes;
  if (opt.shapes != "decode") shapes = model_shapes();
  if (opt.shapes != "model")
    for (const Shape& s : decode_shapes()) shapes.push_back(s);

  double load[3] = {0, 0, 0};
  getloadavg(load, 3);
  std::printf("gemm_lab: %d thread(s), %d sample(s) after %d warm-up call(s)%s, load average %.2f\n",
              threads, opt.reps, opt.warmup, opt.quick ? " (--quick)" : "", load[0]);
  std::printf("ISAs: avx512 %s, avx2 %s; small-M path up to M = %d\n",
              score::cpu::gemm_isa_supported(GemmIsa::Avx512) ? "yes" : "no",
              score::cpu::gemm_isa_supported(GemmIsa::Avx2) ? "yes" : "no", kDefaultSmallM);
#ifdef SCORE_GEMM_LAB_HAVE_OPENBLAS
  {
    const char* ct = std::getenv("OPENBLAS_CORETYPE");
    std::printf("OpenBLAS: %s; core %s (OPENBLAS_CORETYPE=%s)\n", openblas_get_config(),
                openblas_get_corename(), ct ? ct : "unset");
  }
#else
  std::printf("OpenBLAS: not linked (configure with -DSCORE_GEMM_LAB_OPENBLAS=ON)\n");
#endif
#ifdef SCORE_GEMM_LAB_HAVE_DNNL
  {
    const dnnl_version_t* ver = dnnl_version();
    std::printf("oneDNN: %d.%d.%d (%s), CPU runtime %s\n", ver->major, ver->minor, ver->patch,
                ver->hash, ver->cpu_runtime == DNNL_RUNTIME_OMP ? "OpenMP" : "other");
  }
#else
  std::printf("oneDNN: not linked (configure with -DSCORE_GEMM_LAB_DNNL=ON)\n");
#endif
  std::printf("GFLOP/s = 2 M N K / median time; ratio = GFLOP/s / best variant's on that row;\n"
              "max rel err = max |C - ref| / sum_k |a_ik b_kj| vs a double reference, FAIL above "
              "%.0e\n\n",
              kRelTol);
  std::printf("%-22s %-19s %-4s %-18s %8s %9s %17s %6s %10s %s\n", "product", "M x N x K", "form",
              "variant", "GFLOP/s", "ms", "ms min-max", "ratio", "rel err", "");

  int failures = 0;
  unsigned seed = 1;
  for (const Shape& s : shapes) {
    const Operands o = make_operands(s, seed++);
    const std::vector<int> rows = rows_to_check(s, opt.ref_budget);
    std::vector<double> ref, mag;
    reference(s, o, rows, ref, mag);
    std::vector<float> C(static_cast<size_t>(s.M) * s.N);
    struct Row { std::string name; Timing t; double gflops, err; };
    std::vector<Row> out;
    const double flops = 2.0 * s.M * s.N * s.K;
    for (const Variant& v : variants) {
      if (!v.applies(s) || !opt.wanted(v.name)) continue;
      if (v.prepare) v.prepare(s, o);
      // NaN everywhere first: an element the variant never writes fails the check.
      std::fill(C.begin(), C.end(), std::numeric_limits<float>::quiet_NaN());
      v.run(s, o, C.data());
      const double err = max_rel_error(s, C, rows, ref, mag);
      const Timing t = time_variant([&] { v.run(s, o, C.data()); }, opt.reps, opt.warmup);
      out.push_back({v.name, t, flops / (t.median_ms * 1e6), err});
    }
    double best = 0;
    for (const Row& r : out) best = std::max(best, r.gflops);
    char dims[32];
    std::snprintf(dims, sizeof dims, "%d x %d x %d", s.M, s.N, s.K);
    for (const Row& r : out) {
      const bool ok = r.err <= kRelTol;
      failures += !ok;
      char range[32];
      std::snprintf(range, sizeof range, "%.4g-%.4g", r.t.min_ms, r.t.max_ms);
      std::printf("%-22s %-19s %-4s %-18s %8.1f %9.4g %17s %6.2f %10.2e %s\n", s.what.c_str(), dims,
                  s.form.c_str(), r.name.c_str(), r.gflops, r.t.median_ms, range, r.gflops / best,
                  r.err, ok ? "" : "FAIL");
    }
    if (rows.size() < static_cast<size_t>(s.M))
      std::printf("%-22s (checked %zu of %d rows, all columns)\n", "", rows.size(), s.M);
    std::fflush(stdout);
  }
  getloadavg(load, 3);
  std::printf("\nload average at the end: %.2f; %d FAIL(s)\n", load[0], failures);
  return failures ? 1 : 0;
}
