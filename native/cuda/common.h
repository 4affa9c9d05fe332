// Shared helpers of the CUDA backend (host side, includable from .cpp and .cu):
// every CUDA runtime call goes through SCORE_CUDA_CHECK, which turns a failure
// into score::Error (Device, or OutOfMemory for a refused allocation); nothing
// here calls exit() or abort().
#pragma once
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "score/errors.h"

namespace score::cuda {

[[noreturn]] inline void throw_cuda(cudaError_t err, const char* what, const char* file, int line) {
  const std::string msg = std::string("CUDA: ") + what + " failed: " + cudaGetErrorName(err) + " (" +
                          cudaGetErrorString(err) + ") at " + file + ":" + std::to_string(line);
  // A refused cudaMalloc is recoverable (free something, retry smaller); everything else
  // is reported as a device failure, which the backend treats as sticky.
  throw Error(err == cudaErrorMemoryAllocation ? ErrorCode::OutOfMemory : ErrorCode::Device, msg);
}

#define SCORE_CUDA_CHECK(call)                                                        \
  do {                                                                                \
    cudaError_t score_err_ = (call);                                                  \
    if (score_err_ != cudaSuccess) ::score::cuda::throw_cuda(score_err_, #call, __FILE__, __LINE__); \
  } while (0)

// After a kernel launch: catches bad launch configurations at once (execution
// errors surface at the next synchronising call, which is checked too).
#define SCORE_CUDA_LAUNCH_CHECK() SCORE_CUDA_CHECK(cudaGetLastError())

// A device allocation that grows on demand and is freed with its owner.
template <typename T>
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  ~DeviceBuffer() {
    if (ptr_) cudaFree(ptr_);  // never throws from a destructor
  }
  // Makes room for n elements; the contents are lost when it grows.
  T* ensure(size_t n) {
    if (n <= cap_) return ptr_;
    if (ptr_) SCORE_CUDA_CHECK(cudaFree(ptr_));
    ptr_ = nullptr;
    cap_ = 0;
    if (n > 0) SCORE_CUDA_CHECK(cudaMalloc(reinterpret_cast<void**>(&ptr_), n * sizeof(T)));
    cap_ = n;
    return ptr_;
  }
  // Frees the memory now (the next ensure() allocates again).
  void release() {
    if (ptr_) SCORE_CUDA_CHECK(cudaFree(ptr_));
    ptr_ = nullptr;
    cap_ = 0;
  }
  T* get() const { return ptr_; }
  size_t size() const { return cap_; }
  size_t bytes() const { return cap_ * sizeof(T); }

 private:
  T* ptr_ = nullptr;
  size_t cap_ = 0;
};

inline int ceil_div(long long a, long long b) { return static_cast<int>((a + b - 1) / b); }

}  // namespace score::cuda
