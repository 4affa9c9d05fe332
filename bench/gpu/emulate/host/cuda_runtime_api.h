// The part of the CUDA runtime API the backend uses, on the host, for the emulation of
// the whole backend (bench/gpu/emulate/run.sh backend): device memory is host memory
// (filled with 0xFF, NaN in float, so that reading what was never written shows), every
// call is synchronous (streams are accepted and ignored), and a launch runs the kernel
// at once through emu::launch (prelude.h), after checking its configuration the way the
// driver does (an invalid one sets the error cudaGetLastError returns, and runs nothing).
// Stream capture: between cudaStreamBeginCapture and cudaStreamEndCapture on a stream,
// its launches, async copies and memsets are recorded instead of run (arguments as they
// were at capture, as on a device); cudaGraphLaunch runs the recording in order.
#pragma once
#include <cstdlib>
#include <cstring>
#include <functional>
#include <vector>

#include "../prelude.h"

typedef dim3e dim3;
// Vector types with CUDA's alignment (a misaligned vector access faults on a device;
// here it does not, so only the types' layout is emulated).
struct alignas(8) float2 { float x, y; };
struct alignas(16) float4 { float x, y, z, w; };
struct alignas(8) uint2 { unsigned x, y; };
inline float4 make_float4(float x, float y, float z, float w) { return {x, y, z, w}; }

enum cudaError_t {
  cudaSuccess = 0,
  cudaErrorInvalidValue = 1,
  cudaErrorMemoryAllocation = 2,
  cudaErrorInvalidConfiguration = 9,
  cudaErrorInsufficientDriver = 35,
  cudaErrorNoDevice = 100,
  cudaErrorStreamCaptureUnsupported = 900,
};
typedef cudaError_t cudaError;
enum cudaMemcpyKind {
  cudaMemcpyHostToHost = 0,
  cudaMemcpyHostToDevice = 1,
  cudaMemcpyDeviceToHost = 2,
  cudaMemcpyDeviceToDevice = 3,
  cudaMemcpyDefault = 4,
};
enum cudaFuncAttribute { cudaFuncAttributeMaxDynamicSharedMemorySize = 8 };
enum cudaDeviceAttr { cudaDevAttrMultiProcessorCount = 16 };
constexpr unsigned cudaStreamNonBlocking = 1;

struct cudaDeviceProp {
  char name[256];
  size_t totalGlobalMem;
  size_t sharedMemPerBlock, sharedMemPerBlockOptin;
  int major, minor, multiProcessorCount, maxThreadsPerBlock, warpSize;
};

namespace emu {
inline cudaError_t& last_error() {
  static cudaError_t e = cudaSuccess;
  return e;
}
inline cudaError_t set_error(cudaError_t e) {
  if (e != cudaSuccess) last_error() = e;
  return e;
}
// The emulated card: an sm_90 with 4 SMs and, per block, 48 KiB of dynamic shared memory,
// or up to the opt-in limit (227 KiB; EMU_SHARED_OPTIN=<bytes> emulates another card, such
// as an A100's 166912) for a kernel whose cudaFuncAttributeMaxDynamicSharedMemorySize was
// raised, as on a real device.
constexpr size_t kSharedDefault = 48 * 1024;
inline size_t shared_optin() {
  static const size_t v = std::getenv("EMU_SHARED_OPTIN") ? std::strtoull(std::getenv("EMU_SHARED_OPTIN"), nullptr, 10)
                                                          : size_t(227 * 1024);
  return v;
}
inline std::vector<std::pair<const void*, size_t>>& raised_shared() {  // per kernel
  static std::vector<std::pair<const void*, size_t>> v;
  return v;
}
inline size_t shared_limit(const void* kernel) {
  for (auto& [k, n] : raised_shared())
    if (k == kernel) return n;
  return kSharedDefault;
}
// The launch syntax kernel<<<grid, block, smem, stream>>>(args) becomes
// emu::launch_kernel(emu::Config(grid, block, smem, stream), kernel, [=] { kernel(args); }).
struct Config {
  dim3e grid, block;
  size_t smem;
  void* stream;
  Config(dim3e g, dim3e b, size_t s = 0, void* st = nullptr) : grid(g), block(b), smem(s), stream(st) {}
};
// The stream being captured (one at a time) and what it recorded.
struct Capture {
  void* stream = nullptr;
  std::vector<std::function<void()>> ops;
};
inline Capture& capture() {
  static Capture c;
  return c;
}
// Runs op now, or records it when `stream` is being captured.
inline void run_or_record(void* stream, std::function<void()> op) {
  if (stream && capture().stream == stream)
    capture().ops.push_back(std::move(op));
  else
    op();
}
template <typename Fn>
void launch_kernel(const Config& c, const void* kernel, Fn fn) {
  const unsigned long threads = 1ul * c.block.x * c.block.y * c.block.z;
  if (c.grid.x == 0 || c.grid.y == 0 || c.grid.z == 0 || c.grid.y > 65535 || c.grid.z > 65535 ||
      threads == 0 || threads > 1024 || c.block.z > 64 || c.smem > shared_limit(kernel)) {
    set_error(cudaErrorInvalidConfiguration);
    return;
  }
  const Config cc = c;
  run_or_record(c.stream, [cc, fn] { launch(cc.grid, cc.block, cc.smem, fn); });
}
}  // namespace emu

inline const char* cudaGetErrorName(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    case cudaErrorInsufficientDriver: return "cudaErrorInsufficientDriver";
    case cudaErrorNoDevice: return "cudaErrorNoDevice";
    case cudaErrorStreamCaptureUnsupported: return "cudaErrorStreamCaptureUnsupported";
  }
  return "cudaErrorUnknown";
}
inline const char* cudaGetErrorString(cudaError_t e) { return cudaGetErrorName(e); }
inline cudaError_t cudaGetLastError() {
  const cudaError_t e = emu::last_error();
  emu::last_error() = cudaSuccess;
  return e;
}

inline cudaError_t cudaGetDeviceCount(int* n) { *n = 1; return cudaSuccess; }
inline cudaError_t cudaSetDevice(int d) { return d == 0 ? cudaSuccess : emu::set_error(cudaErrorInvalidValue); }
inline cudaError_t cudaGetDevice(int* d) { *d = 0; return cudaSuccess; }
inline cudaError_t cudaGetDeviceProperties(cudaDeviceProp* p, int d) {
  if (d != 0) return emu::set_error(cudaErrorInvalidValue);
  std::memset(p, 0, sizeof *p);
  std::strcpy(p->name, "CPU emulation");
  p->totalGlobalMem = size_t(16) << 30;
  p->sharedMemPerBlock = emu::kSharedDefault, p->sharedMemPerBlockOptin = emu::shared_optin();
  p->major = 9, p->minor = 0, p->multiProcessorCount = 4, p->maxThreadsPerBlock = 1024, p->warpSize = 32;
  return cudaSuccess;
}
inline cudaError_t cudaDeviceGetAttribute(int* v, cudaDeviceAttr a, int) {
  if (a != cudaDevAttrMultiProcessorCount) return emu::set_error(cudaErrorInvalidValue);
  *v = 4;
  return cudaSuccess;
}
inline cudaError_t cudaDeviceSynchronize() { return cudaSuccess; }
template <typename F>
inline cudaError_t cudaFuncSetAttribute(F* kernel, cudaFuncAttribute, int v) {
  if (v < 0 || size_t(v) > emu::shared_optin()) return emu::set_error(cudaErrorInvalidValue);
  const void* k = reinterpret_cast<const void*>(kernel);
  for (auto& [q, n] : emu::raised_shared())
    if (q == k) return n = size_t(v), cudaSuccess;
  emu::raised_shared().emplace_back(k, size_t(v));
  return cudaSuccess;
}

inline cudaError_t cudaStreamCreateWithFlags(cudaStream_t* s, unsigned) {
  *s = reinterpret_cast<cudaStream_t>(new char);
  return cudaSuccess;
}
inline cudaError_t cudaStreamDestroy(cudaStream_t s) {
  delete reinterpret_cast<char*>(s);
  return cudaSuccess;
}
inline cudaError_t cudaStreamSynchronize(cudaStream_t) { return cudaSuccess; }

inline cudaError_t cudaMalloc(void** p, size_t n) {
  *p = std::aligned_alloc(256, (n + 255) / 256 * 256);
  if (!*p) return emu::set_error(cudaErrorMemoryAllocation);
  std::memset(*p, 0xFF, n);
  return cudaSuccess;
}
template <typename T>
inline cudaError_t cudaMalloc(T** p, size_t n) { return cudaMalloc(reinterpret_cast<void**>(p), n); }
inline cudaError_t cudaFree(void* p) { std::free(p); return cudaSuccess; }
inline cudaError_t cudaMemcpy(void* d, const void* s, size_t n, cudaMemcpyKind) {
  if (n) std::memmove(d, s, n);
  return cudaSuccess;
}
inline cudaError_t cudaMemcpyAsync(void* d, const void* s, size_t n, cudaMemcpyKind k, cudaStream_t st = nullptr) {
  // A device can capture copies between device buffers; the backend keeps host copies out.
  if (st && emu::capture().stream == st && k != cudaMemcpyDeviceToDevice)
    return emu::set_error(cudaErrorStreamCaptureUnsupported);
  emu::run_or_record(st, [=] { cudaMemcpy(d, s, n, k); });
  return cudaSuccess;
}
inline cudaError_t cudaMemset(void* d, int v, size_t n) {
  if (n) std::memset(d, v, n);
  return cudaSuccess;
}
inline cudaError_t cudaMemsetAsync(void* d, int v, size_t n, cudaStream_t st = nullptr) {
  emu::run_or_record(st, [=] { cudaMemset(d, v, n); });
  return cudaSuccess;
}

// Graphs: a capture's recording, and its executable copy.
enum cudaStreamCaptureMode { cudaStreamCaptureModeGlobal = 0, cudaStreamCaptureModeThreadLocal = 1 };
struct CUgraph_st {
  std::vector<std::function<void()>> ops;
};
struct CUgraphExec_st {
  std::vector<std::function<void()>> ops;
};
typedef CUgraph_st* cudaGraph_t;
typedef CUgraphExec_st* cudaGraphExec_t;
inline cudaError_t cudaStreamBeginCapture(cudaStream_t s, cudaStreamCaptureMode) {
  if (!s || emu::capture().stream) return emu::set_error(cudaErrorInvalidValue);
  emu::capture() = emu::Capture{s, {}};
  return cudaSuccess;
}
inline cudaError_t cudaStreamEndCapture(cudaStream_t s, cudaGraph_t* g) {
  if (emu::capture().stream != s) return emu::set_error(cudaErrorInvalidValue);
  *g = new CUgraph_st{std::move(emu::capture().ops)};
  emu::capture() = emu::Capture{};
  return cudaSuccess;
}
inline cudaError_t cudaGraphInstantiate(cudaGraphExec_t* e, cudaGraph_t g, unsigned long long = 0) {
  *e = new CUgraphExec_st{g->ops};
  return cudaSuccess;
}
inline cudaError_t cudaGraphLaunch(cudaGraphExec_t e, cudaStream_t) {
  for (auto& op : e->ops) op();
  return cudaSuccess;
}
inline cudaError_t cudaGraphDestroy(cudaGraph_t g) {
  delete g;
  return cudaSuccess;
}
inline cudaError_t cudaGraphExecDestroy(cudaGraphExec_t e) {
  delete e;
  return cudaSuccess;
}

// Device-side helpers of the CUDA headers that the kernels call.
template <typename T>
inline T __ldg(const T* p) { return *p; }
inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
template <typename A, typename B>
inline auto min(A a, B b) { return b < a ? b : a; }
template <typename A, typename B>
inline auto max(A a, B b) { return a < b ? b : a; }
