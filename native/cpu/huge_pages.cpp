#include "cpu/huge_pages.h"

#include <cstdlib>

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace score::cpu {
namespace {
constexpr size_t kHuge = size_t{2} << 20;  // the x86-64 huge page
size_t rounded(size_t bytes) { return (bytes + kHuge - 1) / kHuge * kHuge; }
}  // namespace

void* huge_alloc(size_t bytes) {
  if (bytes < kHuge) return ::operator new(bytes);
  void* p = std::aligned_alloc(kHuge, rounded(bytes));
  if (!p) throw std::bad_alloc();
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  madvise(p, rounded(bytes), MADV_HUGEPAGE);  // advice only: failure leaves 4 KiB pages
#endif
  return p;
}

void huge_free(void* p, size_t bytes) noexcept {
  if (bytes < kHuge) ::operator delete(p);
  else std::free(p);
}

}  // namespace score::cpu
