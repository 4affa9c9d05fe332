// Backend dispatch. The CUDA backend is a separate shared library so that the
// CPU addon loads (and runs) on machines with no CUDA driver or toolkit.
#include <dlfcn.h>

#include "score/errors.h"
#include "score/model.h"

namespace score {

// The CUDA library exports this C symbol; it returns nullptr and fills `err`
// when the device cannot be used (no driver, no GPU, wrong architecture).
using CudaCreateFn = Backend* (*)(const ModelConfig* cfg, bool trainable, char* err, size_t errlen);

bool describe_cuda_device(const DeviceOptions& dev, int index, std::string* text) {
  const std::string lib = dev.cuda_library.empty() ? "libscore_cuda.so" : dev.cuda_library;
  void* handle = dlopen(lib.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!handle) {
    const char* why = dlerror();
    *text = "cannot load " + lib + " (" + (why ? why : "unknown reason") + ")";
    return false;
  }
  using DescribeFn = bool (*)(int, char*, size_t);
  auto describe = reinterpret_cast<DescribeFn>(dlsym(handle, "score_cuda_describe_device"));
  if (!describe) {
    *text = lib + " does not export score_cuda_describe_device";
    return false;
  }
  char buf[512] = {0};
  const bool ok = describe(index, buf, sizeof buf);
  *text = buf;
  return ok;
}

std::unique_ptr<Backend> create_backend(const ModelConfig& cfg, bool trainable,
                                        const DeviceOptions& dev) {
  if (dev.device == "cpu") return create_cpu_backend(cfg, trainable);
  SCORE_CHECK(dev.device == "cuda", InvalidArgument,
              "device '" + dev.device + "' is unknown (expected 'cpu' or 'cuda')");
  const std::string lib = dev.cuda_library.empty() ? "libscore_cuda.so" : dev.cuda_library;
  // RTLD_LOCAL: the library's CUDA runtime stays private to it.
  void* handle = dlopen(lib.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!handle) {
    const char* why = dlerror();
    throw Error(ErrorCode::Device, "device 'cuda': cannot load the CUDA backend library " + lib +
                                       " (" + (why ? why : "unknown reason") +
                                       "); this build has no CUDA backend or CUDA is not installed");
  }
  auto create = reinterpret_cast<CudaCreateFn>(dlsym(handle, "score_cuda_create_backend"));
  SCORE_CHECK(create != nullptr, Device,
              "device 'cuda': " + lib + " does not export score_cuda_create_backend");
  char err[512] = {0};
  Backend* b = create(&cfg, trainable, err, sizeof err);
  SCORE_CHECK(b != nullptr, Device, std::string("device 'cuda': ") + err);
  return std::unique_ptr<Backend>(b);
}

}  // namespace score
