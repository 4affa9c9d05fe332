// Fuzz target: the checkpoint loader (native/core/checkpoint.cpp): a folder
// with config.json and weights, as load_checkpoint reads it.
//
// The input holds the folder's files, separated by kPartSep:
//   config.json <sep> weights.safetensors [<sep> model.safetensors.index.json]
// With two parts the weights are written as model.safetensors; with three as
// the shard "model-00001-of-00001.safetensors" next to the index.
#include <vector>

#include "fuzz_common.h"
#include "score/checkpoint.h"
#include "score/params.h"

using namespace score;

static const std::string kPartSep = "\n#SCORE-FUZZ-PART#\n";

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string in(reinterpret_cast<const char*>(data), size);
  std::vector<std::string> parts;
  for (size_t at = 0;;) {
    size_t k = in.find(kPartSep, at);
    if (k == std::string::npos || parts.size() == 2) {
      parts.push_back(in.substr(at));
      break;
    }
    parts.push_back(in.substr(at, k - at));
    at = k + kPartSep.size();
  }
  const std::string dir = score_fuzz::scratch_dir() + "/ckpt";
  static bool made = false;
  if (!made) {
    ::mkdir(dir.c_str(), 0755);
    made = true;
  }
  for (const char* f : {"config.json", "model.safetensors", "model.safetensors.index.json",
                        "model-00001-of-00001.safetensors"})
    ::unlink((dir + "/" + f).c_str());
  score_fuzz::write_file(dir + "/config.json", parts[0]);
  if (parts.size() == 2) score_fuzz::write_file(dir + "/model.safetensors", parts[1]);
  if (parts.size() == 3) {
    score_fuzz::write_file(dir + "/model-00001-of-00001.safetensors", parts[1]);
    score_fuzz::write_file(dir + "/model.safetensors.index.json", parts[2]);
  }
  try {
    Checkpoint ck = load_checkpoint(dir);
    if (ck.params.size() != ParamLayout(ck.config).numel())
      score_fuzz::fail("loaded parameter count does not match the layout");
  } catch (const Error& e) {
    score_fuzz::check_error(e, dir);
  }
  return 0;
}
