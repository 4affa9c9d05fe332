// Fuzz target: the safetensors reader (native/core/safetensors.cpp).
// The input is written to a file and opened; every tensor of a file that
// opens is read raw and, for float dtypes, converted.
#include <vector>

#include "fuzz_common.h"
#include "score/safetensors.h"

using namespace score;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = score_fuzz::scratch_dir() + "/model.safetensors";
  score_fuzz::write_file(path, data, size);
  try {
    SafetensorsFile f = SafetensorsFile::open(path);
    uint64_t total = 0;
    for (const SafeTensorInfo& t : f.tensors()) {
      if (f.find(t.name) != &t) score_fuzz::fail("find() does not return tensor " + t.name);
      if (t.end - t.begin != t.numel * dtype_size(t.dtype) || t.end > f.data_size())
        score_fuzz::fail("tensor " + t.name + " has inconsistent offsets");
      total += t.end - t.begin;
      if (total > f.data_size()) score_fuzz::fail("tensors cover more bytes than the data section holds");
      std::vector<unsigned char> raw(static_cast<size_t>(t.end - t.begin) + 1);
      f.read_raw(t, raw.data());
      if (t.dtype == DType::F32 || t.dtype == DType::F16 || t.dtype == DType::BF16 || t.dtype == DType::F64) {
        std::vector<float> out(static_cast<size_t>(t.numel) + 1);
        f.to_float(t, out.data());
      } else {
        std::vector<float> out(static_cast<size_t>(t.numel) + 1);
        try {
          f.to_float(t, out.data());
          score_fuzz::fail("to_float accepted dtype " + std::string(dtype_name(t.dtype)));
        } catch (const Error& e) {
          if (e.code() != ErrorCode::Unsupported) throw;
        }
      }
    }
  } catch (const Error& e) {
    score_fuzz::check_error(e, path);
  }
  return 0;
}
