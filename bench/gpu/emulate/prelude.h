// Host emulation of the CUDA features attention_flash.cu uses: one std::thread per
// CUDA thread, barriers for __syncthreads / __syncwarp / shuffles / mma.sync.
#pragma once
#include <atomic>
#include <barrier>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(x)
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

struct dim3e { unsigned x = 1, y = 1, z = 1; };
namespace emu {
struct Warp {
  std::barrier<> bar{32};
  double x[32];
  uint32_t a[32][4], b[32][2];
};
inline thread_local dim3e tIdx, bIdx;
inline dim3e gDim, bDim;
inline thread_local unsigned char* smem;
inline thread_local Warp* warp;
inline thread_local std::barrier<>* block_bar;
inline thread_local int lane;
inline std::atomic<long> mma_calls{0};

inline void mma(float (&c)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
  Warp& w = *warp;
  for (int r = 0; r < 4; r++) w.a[lane][r] = a[r];
  for (int r = 0; r < 2; r++) w.b[lane][r] = b[r];
  w.bar.arrive_and_wait();
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
  w.bar.arrive_and_wait();
}

// Runs fn() as grid x block threads, one block at a time, shared memory filled with
// 0xFF (NaN in float and bf16) so that a read of anything not staged shows up.
template <typename Fn>
void launch(dim3e grid, int threads, size_t smem_bytes, Fn fn) {
  gDim = grid;
  bDim = {unsigned(threads), 1, 1};
  for (unsigned z = 0; z < grid.z; z++)
    for (unsigned y = 0; y < grid.y; y++)
      for (unsigned x = 0; x < grid.x; x++) {
        std::vector<unsigned char> sm(smem_bytes + 16, 0xFF);
        std::barrier<> bb(threads);
        std::vector<std::unique_ptr<Warp>> warps;
        for (int w = 0; w < (threads + 31) / 32; w++) warps.push_back(std::make_unique<Warp>());
        std::vector<std::thread> th;
        for (int i = 0; i < threads; i++)
          th.emplace_back([&, i] {
            tIdx = {unsigned(i), 0, 0};
            bIdx = {x, y, z};
            smem = sm.data();
            warp = warps[i / 32].get();
            block_bar = &bb;
            lane = i % 32;
            fn();
          });
        for (auto& t : th) t.join();
      }
}
}  // namespace emu

#define threadIdx ::emu::tIdx
#define blockIdx ::emu::bIdx
#define gridDim ::emu::gDim
#define blockDim ::emu::bDim
inline void __syncthreads() { ::emu::block_bar->arrive_and_wait(); }
inline void __syncwarp() { ::emu::warp->bar.arrive_and_wait(); }
template <typename T>
inline T __shfl_xor_sync(unsigned, T v, int o) {
  ::emu::warp->x[::emu::lane] = double(v);
  ::emu::warp->bar.arrive_and_wait();
  const T r = T(::emu::warp->x[::emu::lane ^ o]);
  ::emu::warp->bar.arrive_and_wait();
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
inline int __clz(int x) { return x == 0 ? 32 : __builtin_clz(unsigned(x)); }
inline int __ffs(int x) { return __builtin_ffs(x); }
template <typename T>
inline T __shfl_sync(unsigned, T v, int src) {
  ::emu::warp->x[::emu::lane] = double(v);
  ::emu::warp->bar.arrive_and_wait();
  const T r = T(::emu::warp->x[src & 31]);
  ::emu::warp->bar.arrive_and_wait();
  return r;
}
template <typename T>
inline T __shfl_up_sync(unsigned, T v, int delta) {
  ::emu::warp->x[::emu::lane] = double(v);
  ::emu::warp->bar.arrive_and_wait();
  const T r = ::emu::lane >= delta ? T(::emu::warp->x[::emu::lane - delta]) : v;
  ::emu::warp->bar.arrive_and_wait();
  return r;
}
inline unsigned __ballot_sync(unsigned, bool pred) {
  ::emu::warp->x[::emu::lane] = pred ? 1.0 : 0.0;
  ::emu::warp->bar.arrive_and_wait();
  unsigned r = 0;
  for (int l = 0; l < 32; l++) r |= (::emu::warp->x[l] != 0.0 ? 1u : 0u) << l;
  ::emu::warp->bar.arrive_and_wait();
  return r;
}
