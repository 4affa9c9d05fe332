// A minimal test harness for the C++ tests: TEST(name) { ... } blocks, CHECK
// macros that record failures with file:line, and a main() that runs every
// test, prints "N passed, N failed" and returns non-zero on failure.
// Define SCORE_TEST_MAIN in exactly one translation unit per executable
// (each test_*.cpp is its own executable, so: in each).
#pragma once
#include <cmath>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

namespace score_test {

struct Case {
  const char* name;
  std::function<void()> fn;
};
inline std::vector<Case>& registry() {
  static std::vector<Case> cases;
  return cases;
}
inline int& failures() {
  static int n = 0;
  return n;
}
struct Register {
  Register(const char* name, std::function<void()> fn) { registry().push_back({name, std::move(fn)}); }
};

}  // namespace score_test

#define SCORE_TEST_CONCAT2(a, b) a##b
#define SCORE_TEST_CONCAT(a, b) SCORE_TEST_CONCAT2(a, b)
#define TEST(name)                                                                   \
  static void name();                                                                \
  static score_test::Register SCORE_TEST_CONCAT(reg_, name)(#name, name);           \
  static void name()

#define CHECK(cond)                                                                  \
  do {                                                                               \
    if (!(cond)) {                                                                   \
      std::fprintf(stderr, "  %s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
      score_test::failures()++;                                                      \
    }                                                                                \
  } while (0)

// |a - b| <= atol + rtol * |b|
#define CHECK_NEAR(a, b, atol, rtol)                                                  \
  do {                                                                                \
    double _a = (a), _b = (b);                                                        \
    if (!(std::fabs(_a - _b) <= (atol) + (rtol) * std::fabs(_b))) {                   \
      std::fprintf(stderr, "  %s:%d: CHECK_NEAR failed: %s = %.10g, %s = %.10g\n", __FILE__, \
                   __LINE__, #a, _a, #b, _b);                                         \
      score_test::failures()++;                                                       \
    }                                                                                 \
  } while (0)

// Expect `stmt` to throw score::Error with the given ErrorCode member and a
// message containing `needle`.
#define CHECK_THROWS(stmt, errcode, needle)                                           \
  do {                                                                                \
    bool _thrown = false;                                                             \
    try {                                                                             \
      stmt;                                                                           \
    } catch (const score::Error& _e) {                                                \
      _thrown = true;                                                                 \
      if (_e.code() != score::ErrorCode::errcode ||                                   \
          std::string(_e.what()).find(needle) == std::string::npos) {                 \
        std::fprintf(stderr, "  %s:%d: wrong error from %s: [%s] %s\n", __FILE__, __LINE__, \
                     #stmt, score::error_code_name(_e.code()), _e.what());           \
        score_test::failures()++;                                                     \
      }                                                                               \
    }                                                                                 \
    if (!_thrown) {                                                                   \
      std::fprintf(stderr, "  %s:%d: %s did not throw\n", __FILE__, __LINE__, #stmt); \
      score_test::failures()++;                                                       \
    }                                                                                 \
  } while (0)

#ifdef SCORE_TEST_MAIN
int main() {
  int failed_cases = 0, passed_cases = 0;
  for (auto& c : score_test::registry()) {
    int before = score_test::failures();
    try {
      c.fn();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "  %s: unexpected exception: %s\n", c.name, e.what());
      score_test::failures()++;
    }
    bool ok = score_test::failures() == before;
    std::printf("%s %s\n", ok ? "ok  " : "FAIL", c.name);
    (ok ? passed_cases : failed_cases)++;
  }
  std::printf("%d passed, %d failed\n", passed_cases, failed_cases);
  return failed_cases == 0 ? 0 : 1;
}
#endif
