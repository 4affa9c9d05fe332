// Host emulation of the CUDA device features the backend's kernels use. A block runs as
// one fiber per CUDA thread on the calling OS thread (a 6-register context switch, no
// system call), blocks one after another; __syncthreads, __syncwarp, the shuffles,
// ballots, mma.sync and ldmatrix are barriers over the block's or the warp's fibers, and a
// barrier nobody can complete (a __syncthreads some threads never reach) stops the run
// with a message instead of hanging. Used by the single-kernel emulation of the sampler
// (sampling_main.cpp) and, through the shim headers in host/, by the whole backend.
// x86-64 (System V) only.
#pragma once
#include <sys/mman.h>

#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <type_traits>
#include <vector>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __align__(x)
// Blocks run one after another, so a function-level static is one block's shared variable.
#define __shared__ static
typedef void* cudaStream_t;

struct __nv_bfloat16 { uint16_t x; };
struct __nv_bfloat162 { __nv_bfloat16 x, y; };
inline __nv_bfloat16 __float2bfloat16_rn(float f) {
  uint32_t u; std::memcpy(&u, &f, 4); u += 0x7fff + ((u >> 16) & 1); return {uint16_t(u >> 16)};
}
inline unsigned short __bfloat16_as_ushort(__nv_bfloat16 h) { return h.x; }
inline __nv_bfloat162 __floats2bfloat162_rn(float a, float b) { return {__float2bfloat16_rn(a), __float2bfloat16_rn(b)}; }
inline float bf2f(uint16_t h) { uint32_t u = uint32_t(h) << 16; float f; std::memcpy(&f, &u, 4); return f; }

struct dim3e {
  unsigned x, y, z;
  dim3e(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
namespace emu {

// ---- fibers ----
// Saves the callee-saved registers on the current stack, stores its pointer in *save,
// loads `load` and pops the same registers from there: the System V switch. noipa: the
// compiler must not infer from the body that the call leaves memory alone (another
// fiber runs in between and changes the globals below).
__attribute__((naked, noipa)) inline void switch_stack(void** /*save*/, void* /*load*/) {
  asm volatile(
      "pushq %rbp\n pushq %rbx\n pushq %r12\n pushq %r13\n pushq %r14\n pushq %r15\n"
      "movq %rsp, (%rdi)\n movq %rsi, %rsp\n"
      "popq %r15\n popq %r14\n popq %r13\n popq %r12\n popq %rbx\n popq %rbp\n ret\n");
}

struct Barrier {
  int expected = 0, arrived = 0;
  unsigned gen = 0;
};
struct Warp {
  explicit Warp(int lanes) { bar.expected = lanes; }
  Barrier bar;
  double x[32];
  uint32_t a[32][4], b[32][2];
  const unsigned char* rows[32];  // ldmatrix: each lane's row address
};
struct Fiber {
  void* sp = nullptr;
  bool done = false;
  const Barrier* wait = nullptr;  // waiting on this barrier until its generation moves on
  unsigned wait_gen = 0;
};

// The running fiber's view (set by the scheduler before each switch).
inline dim3e tIdx, bIdx, gDim, bDim;
inline unsigned char* smem;
inline size_t smem_bytes_now;  // the running block's dynamic shared memory
inline Warp* warp;
inline Barrier* block_bar;
inline int lane;
inline Fiber* current;
inline void* scheduler_sp;
inline std::atomic<long> mma_calls{0};

inline void yield() {
  switch_stack(&current->sp, scheduler_sp);
  asm volatile("" ::: "memory");  // and reload whatever it kept of them in registers
}
inline void release(Barrier& b) {
  b.arrived = 0;
  b.gen++;
}
inline void arrive_and_wait(Barrier& b) {
  const unsigned g = b.gen;
  if (++b.arrived >= b.expected) return release(b);
  current->wait = &b, current->wait_gen = g;
  yield();  // resumed once the last member has arrived
  current->wait = nullptr;
}
// A thread that has returned leaves the barrier (as exited threads do on sm_70+).
inline void arrive_and_drop(Barrier& b) {
  b.expected--;
  if (b.arrived > 0 && b.arrived >= b.expected) release(b);
}

// Counts the blocks run; a static __shared__ variable is refilled with 0xFF at its first
// use in each block (translate.py adds the call after its declaration).
inline unsigned long block_serial = 0;
inline void fresh_shared(void* p, size_t n) {
  static std::vector<std::pair<void*, unsigned long>> seen;  // a handful of variables
  for (auto& [q, serial] : seen)
    if (q == p) {
      if (serial != block_serial) std::memset(p, 0xFF, n), serial = block_serial;
      return;
    }
  std::memset(p, 0xFF, n);
  seen.emplace_back(p, block_serial);
}

// Stacks of the block's fibers: 256 KiB each below a guard page, reused across launches.
constexpr size_t kStack = size_t(256) << 10, kGuard = 4096;
inline unsigned char* stacks(unsigned n) {
  static unsigned char* base = nullptr;
  static unsigned have = 0;
  if (n > have) {
    if (base) munmap(base, have * (kStack + kGuard));
    void* p = mmap(nullptr, n * (kStack + kGuard), PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) {
      std::fprintf(stderr, "emulation: cannot map fiber stacks\n");
      std::abort();
    }
    base = static_cast<unsigned char*>(p), have = n;
    for (unsigned i = 0; i < n; i++) mprotect(base + i * (kStack + kGuard), kGuard, PROT_NONE);
  }
  return base;
}

inline void mma(float (&c)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
  Warp& w = *warp;
  for (int r = 0; r < 4; r++) w.a[lane][r] = a[r];
  for (int r = 0; r < 2; r++) w.b[lane][r] = b[r];
  arrive_and_wait(w.bar);
  float A[16][16], B[16][8];
  for (int L = 0; L < 32; L++) {
    const int g = L >> 2, t = L & 3;
    for (int r = 0; r < 4; r++) {
      const int row = g + (r & 1) * 8, col = 2 * t + (r >> 1) * 8;
      A[row][col] = bf2f(w.a[L][r] & 0xffff);
      A[row][col + 1] = bf2f(w.a[L][r] >> 16);
    }
    for (int r = 0; r < 2; r++) {
      const int k = 2 * t + r * 8;
      B[k][g] = bf2f(w.b[L][r] & 0xffff);
      B[k + 1][g] = bf2f(w.b[L][r] >> 16);
    }
  }
  const int g = lane >> 2, t = lane & 3;
  for (int e = 0; e < 4; e++) {
    const int row = g + (e >> 1) * 8, col = 2 * t + (e & 1);
    float s = c[e];
    for (int k = 0; k < 16; k++) s += A[row][k] * B[k][col];
    c[e] = s;
  }
  if (lane == 0) mma_calls++;
  arrive_and_wait(w.bar);
}

// ldmatrix.sync.aligned.m8n8.x4[.trans].shared.b16: lane 8i + k gives the address of row k
// (8 bf16, 16 bytes) of matrix i; r[i] = this lane's pair of matrix i, row lane/4 and
// columns 2 (lane%4), +1, or with trans column lane/4 and rows 2 (lane%4), +1 (PTX ISA,
// "Warp-level matrix load instruction: ldmatrix"). A row address outside the block's
// dynamic shared memory or not 16-byte aligned stops the emulation (the GPU would fault).
inline void ldmatrix_x4(uint32_t (&r)[4], const void* row, bool trans) {
  Warp& w = *warp;
  const auto* p = static_cast<const unsigned char*>(row);
  if (reinterpret_cast<uintptr_t>(p) % 16 != 0 || p < smem || p + 16 > smem + smem_bytes_now) {
    std::fprintf(stderr, "emulation: ldmatrix row address %p is not a 16-byte aligned row of shared memory\n", row);
    std::abort();
  }
  w.rows[lane] = p;
  arrive_and_wait(w.bar);
  const int g = lane >> 2, t = lane & 3;
  auto at = [&](int i, int row_, int col) {
    uint16_t v;
    std::memcpy(&v, w.rows[8 * i + row_] + 2 * col, 2);
    return uint32_t(v);
  };
  for (int i = 0; i < 4; i++)
    r[i] = trans ? at(i, 2 * t, g) | at(i, 2 * t + 1, g) << 16 : at(i, g, 2 * t) | at(i, g, 2 * t + 1) << 16;
  arrive_and_wait(w.bar);
}

// Runs fn() as grid x block threads, one block at a time, shared memory filled with
// 0xFF (NaN in float and bf16) so that a read of anything not staged shows up.
template <typename Fn>
void launch(dim3e grid, dim3e block, size_t smem_bytes, Fn fn) {
  static std::mutex one_at_a_time;  // the fiber state above is one per process
  std::lock_guard<std::mutex> lock(one_at_a_time);
  const unsigned threads = block.x * block.y * block.z, nwarps = (threads + 31) / 32;
  unsigned char* stack = stacks(threads);
  static Fn* body;
  body = &fn;
  // A fiber's first frame: runs the kernel body, leaves the barriers, never returns.
  struct Entry {
    static void run() {
      (*body)();
      arrive_and_drop(warp->bar);
      arrive_and_drop(*block_bar);
      current->done = true;
      yield();
    }
  };
  gDim = grid;
  bDim = block;
  std::vector<unsigned char> sm(smem_bytes + 16);
  std::vector<Fiber> fibers(threads);
  std::vector<std::unique_ptr<Warp>> warps(nwarps);
  Barrier bb;
  for (unsigned z = 0; z < grid.z; z++)
    for (unsigned y = 0; y < grid.y; y++)
      for (unsigned x = 0; x < grid.x; x++) {
        std::memset(sm.data(), 0xFF, sm.size());
        bb = Barrier{};
        bb.expected = int(threads);
        for (unsigned w = 0; w < nwarps; w++) warps[w] = std::make_unique<Warp>(int(std::min(32u, threads - 32 * w)));
        for (unsigned i = 0; i < threads; i++) {
          // Top of stack i: a zero return address for Entry::run (rsp % 16 == 8 at its
          // entry, as after a call), below it Entry::run for switch_stack's ret, and six
          // zeroed registers for its pops.
          auto* top = reinterpret_cast<uintptr_t*>(stack + i * (kStack + kGuard) + kGuard + kStack);
          top[-1] = 0;
          top[-2] = reinterpret_cast<uintptr_t>(&Entry::run);
          for (int r = 3; r <= 8; r++) top[-r] = 0;
          fibers[i] = Fiber{};
          fibers[i].sp = top - 8;
        }
        bIdx = {x, y, z};
        smem = sm.data();
        smem_bytes_now = smem_bytes;
        block_bar = &bb;
        // Fibers switch only at barriers, so between two barriers each thread's work runs
        // in one piece: in thread order in even blocks, in reverse order in odd ones, so that
        // a missing barrier shows whichever of writer and reader the kernel has wrong.
        const bool reverse = ++block_serial % 2 == 0;
        for (unsigned live = threads; live > 0;) {
          bool ran = false;
          for (unsigned k = 0; k < threads; k++) {
            const unsigned i = reverse ? threads - 1 - k : k;
            Fiber& f = fibers[i];
            if (f.done || (f.wait && f.wait->gen == f.wait_gen)) continue;
            tIdx = {i % block.x, i / block.x % block.y, i / (block.x * block.y)};
            lane = int(i % 32);
            warp = warps[i / 32].get();
            current = &f;
            switch_stack(&scheduler_sp, f.sp);
            ran = true;
            if (f.done) live--;
          }
          if (!ran) {
            std::fprintf(stderr,
                         "emulation: deadlock in block (%u, %u, %u): %u threads wait at barriers "
                         "that the others never reach\n", x, y, z, live);
            std::abort();
          }
        }
      }
}
}  // namespace emu

#define threadIdx ::emu::tIdx
#define blockIdx ::emu::bIdx
#define gridDim ::emu::gDim
#define blockDim ::emu::bDim
inline void __syncthreads() { ::emu::arrive_and_wait(*::emu::block_bar); }
inline void __syncwarp() { ::emu::arrive_and_wait(::emu::warp->bar); }
template <typename T>
inline T __shfl_xor_sync(unsigned, T v, int o) {
  ::emu::warp->x[::emu::lane] = double(v);
  ::emu::arrive_and_wait(::emu::warp->bar);
  const T r = T(::emu::warp->x[::emu::lane ^ o]);
  ::emu::arrive_and_wait(::emu::warp->bar);
  return r;
}
template <typename T>
inline T atomicAdd(T* p, T v) { return std::atomic_ref<T>(*p).fetch_add(v); }
inline int atomicOr(int* p, int v) { return std::atomic_ref<int>(*p).fetch_or(v); }
inline int atomicMax(int* p, int v) {
  std::atomic_ref<int> a(*p);
  int old = a.load();
  while (old < v && !a.compare_exchange_weak(old, v)) {
  }
  return old;
}
inline unsigned __float_as_uint(float x) { unsigned u; std::memcpy(&u, &x, 4); return u; }
inline float __uint_as_float(unsigned u) { float x; std::memcpy(&x, &u, 4); return x; }
inline int __clz(int x) { return x == 0 ? 32 : __builtin_clz(unsigned(x)); }
inline int __ffs(int x) { return __builtin_ffs(x); }
template <typename T>
inline T __shfl_sync(unsigned, T v, int src) {
  ::emu::warp->x[::emu::lane] = double(v);
  ::emu::arrive_and_wait(::emu::warp->bar);
  const T r = T(::emu::warp->x[src & 31]);
  ::emu::arrive_and_wait(::emu::warp->bar);
  return r;
}
template <typename T>
inline T __shfl_up_sync(unsigned, T v, int delta) {
  ::emu::warp->x[::emu::lane] = double(v);
  ::emu::arrive_and_wait(::emu::warp->bar);
  const T r = ::emu::lane >= delta ? T(::emu::warp->x[::emu::lane - delta]) : v;
  ::emu::arrive_and_wait(::emu::warp->bar);
  return r;
}
inline unsigned __ballot_sync(unsigned, bool pred) {
  ::emu::warp->x[::emu::lane] = pred ? 1.0 : 0.0;
  ::emu::arrive_and_wait(::emu::warp->bar);
  unsigned r = 0;
  for (int l = 0; l < 32; l++) r |= (::emu::warp->x[l] != 0.0 ? 1u : 0u) << l;
  ::emu::arrive_and_wait(::emu::warp->bar);
  return r;
}
