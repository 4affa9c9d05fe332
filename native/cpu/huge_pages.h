// Large buffers on transparent huge pages.
//
// A first touch of a 4 KiB page costs a page fault; on this project's VM that is about
// 5 us (64 MiB: 330 ms), so a generate call that allocated its KV cache and packed
// weights afresh spent a quarter of its time faulting them in. Buffers from 2 MiB up
// are therefore 2 MiB-aligned and advised MADV_HUGEPAGE: one fault per 2 MiB (64 MiB:
// 6 ms once the kernel has huge pages at hand), and fewer TLB misses when streaming
// them. Where the kernel has no huge pages (THP "never"), the advice is ignored and the
// buffer behaves as any other. Smaller buffers come from operator new.
#pragma once
#include <cstddef>
#include <new>
#include <vector>

namespace score::cpu {

// Throw std::bad_alloc like operator new. huge_free must get the same byte count.
void* huge_alloc(size_t bytes);
void huge_free(void* p, size_t bytes) noexcept;

template <typename T>
struct HugePageAllocator {
  using value_type = T;
  HugePageAllocator() = default;
  template <typename U>
  HugePageAllocator(const HugePageAllocator<U>&) {}
  T* allocate(size_t n) { return static_cast<T*>(huge_alloc(n * sizeof(T))); }
  void deallocate(T* p, size_t n) noexcept { huge_free(p, n * sizeof(T)); }
  template <typename U>
  bool operator==(const HugePageAllocator<U>&) const { return true; }
  template <typename U>
  bool operator!=(const HugePageAllocator<U>&) const { return false; }
};

// A std::vector whose storage is huge_alloc'ed.
template <typename T>
using BigVector = std::vector<T, HugePageAllocator<T>>;

}  // namespace score::cpu
