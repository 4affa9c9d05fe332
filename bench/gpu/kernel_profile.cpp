// CUPTI activity records summed per kernel name (see kernel_profile.h).
#include "kernel_profile.h"

#include <stdexcept>

#ifdef SCORE_HAVE_CUPTI
#include <cuda_runtime_api.h>
#include <cupti.h>
#include <cxxabi.h>

#include <algorithm>
#include <cstdlib>
#include <map>
#include <mutex>

namespace score_bench {
namespace {

constexpr size_t kBufferBytes = size_t(8) << 20;

// CUPTI's completion callback has no user pointer: the one profile's table lives here.
std::mutex g_mutex;
std::map<std::string, KernelTime> g_table;

void check(CUptiResult r, const char* what) {
  if (r == CUPTI_SUCCESS) return;
  const char* s = "?";
  cuptiGetResultString(r, &s);
  throw std::runtime_error(std::string("CUPTI: ") + what + ": " + s);
}

// "score::cuda::(anonymous namespace)::gemm_kernel<true, false>(...)" -> without "(...)".
std::string short_name(const char* mangled) {
  int status = 0;
  char* d = abi::__cxa_demangle(mangled, nullptr, nullptr, &status);
  std::string s = status == 0 && d ? d : mangled;
  std::free(d);
  int depth = 0;  // cut at the first '(' outside template brackets
  for (size_t i = 0; i < s.size(); i++) {
    if (s[i] == '<') depth++;
    if (s[i] == '>') depth--;
    if (s[i] == '(' && depth == 0 && i > 0 && s.compare(i, 21, "(anonymous namespace)") != 0) {
      s.resize(i);
      break;
    }
  }
  for (const std::string prefix : {"score::cuda::(anonymous namespace)::", "score::cuda::"})
    if (s.rfind(prefix, 0) == 0) s.erase(0, prefix.size());
  return s;
}

void add(const std::string& name, uint64_t start, uint64_t end) {
  KernelTime& k = g_table[name];
  k.name = name;
  k.ms += (end - start) * 1e-6;
  k.calls++;
}

void CUPTIAPI buffer_requested(uint8_t** buffer, size_t* size, size_t* max_records) {
  *buffer = static_cast<uint8_t*>(std::aligned_alloc(8, kBufferBytes));
  *size = *buffer ? kBufferBytes : 0;
  *max_records = 0;
}

void CUPTIAPI buffer_completed(CUcontext, uint32_t, uint8_t* buffer, size_t, size_t valid) {
  std::lock_guard<std::mutex> lock(g_mutex);
  CUpti_Activity* rec = nullptr;
  while (cuptiActivityGetNextRecord(buffer, valid, &rec) == CUPTI_SUCCESS) {
    if (rec->kind == CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL) {
      const auto* k = reinterpret_cast<const CUpti_ActivityKernel10*>(rec);
      add(short_name(k->name), k->start, k->end);
    } else if (rec->kind == CUPTI_ACTIVITY_KIND_MEMSET) {
      const auto* m = reinterpret_cast<const CUpti_ActivityMemset4*>(rec);
      add("[memset]", m->start, m->end);
    } else if (rec->kind == CUPTI_ACTIVITY_KIND_MEMCPY) {
      const auto* m = reinterpret_cast<const CUpti_ActivityMemcpy6*>(rec);
      const char* dir = m->copyKind == CUPTI_ACTIVITY_MEMCPY_KIND_HTOD   ? "[memcpy HtoD]"
                        : m->copyKind == CUPTI_ACTIVITY_MEMCPY_KIND_DTOH ? "[memcpy DtoH]"
                                                                         : "[memcpy other]";
      add(dir, m->start, m->end);
    }
  }
  std::free(buffer);
}

constexpr CUpti_ActivityKind kKinds[] = {CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL,
                                         CUPTI_ACTIVITY_KIND_MEMSET, CUPTI_ACTIVITY_KIND_MEMCPY};

}  // namespace

bool kernel_profile_available() { return true; }

void kernel_profile_start() {
  {
    std::lock_guard<std::mutex> lock(g_mutex);
    g_table.clear();
  }
  check(cuptiActivityRegisterCallbacks(buffer_requested, buffer_completed), "register callbacks");
  for (CUpti_ActivityKind k : kKinds) check(cuptiActivityEnable(k), "enable activity");
}

std::vector<KernelTime> kernel_profile_stop() {
  if (cudaDeviceSynchronize() != cudaSuccess) throw std::runtime_error("cudaDeviceSynchronize failed");
  check(cuptiActivityFlushAll(CUPTI_ACTIVITY_FLAG_FLUSH_FORCED), "flush");
  for (CUpti_ActivityKind k : kKinds) check(cuptiActivityDisable(k), "disable activity");
  std::lock_guard<std::mutex> lock(g_mutex);
  std::vector<KernelTime> v;
  for (auto& kv : g_table) v.push_back(kv.second);
  std::sort(v.begin(), v.end(), [](const KernelTime& a, const KernelTime& b) { return a.ms > b.ms; });
  return v;
}

}  // namespace score_bench

#else  // built without CUPTI

namespace score_bench {
bool kernel_profile_available() { return false; }
void kernel_profile_start() { throw std::runtime_error("bench_cuda was built without CUPTI"); }
std::vector<KernelTime> kernel_profile_stop() { return {}; }
}  // namespace score_bench

#endif
