// Fuzz target: config.json parsing (native/core/config.cpp on top of json.cpp).
// A config that parses must validate, build its parameter layout and tensor
// map, and survive config_to_json -> parse_config_json unchanged.
#include "fuzz_common.h"
#include "score/checkpoint.h"
#include "score/config.h"
#include "score/params.h"

using namespace score;

namespace {

bool same_config(const ModelConfig& a, const ModelConfig& b) {
  bool rope = a.is_gpt2() || a.rope_theta == b.rope_theta;
  return a.arch == b.arch && a.vocab_size == b.vocab_size && a.n_layer == b.n_layer && a.d_model == b.d_model &&
         a.n_head == b.n_head && a.n_kv_head == b.n_kv_head && a.head_dim == b.head_dim && a.d_ff == b.d_ff &&
         a.max_pos == b.max_pos && a.norm_eps == b.norm_eps && rope && a.qkv_bias == b.qkv_bias &&
         a.o_bias == b.o_bias && a.tie_embeddings == b.tie_embeddings && a.bos_token_id == b.bos_token_id &&
         a.eos_token_id == b.eos_token_id;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  const std::string path = "fuzz/config.json";
  ModelConfig c;
  try {
    c = parse_config_json(text, path);
  } catch (const Error& e) {
    score_fuzz::check_error(e, path);
    return 0;
  }
  try {
    c.validate(path);
    const ParamLayout layout(c);
    const std::vector<HfTensor> map = hf_tensor_map(c, layout);
    if (map.empty() || layout.numel() == 0) score_fuzz::fail("an accepted config has no parameters");
    for (const HfTensor& t : map) {
      size_t n = 1;
      for (int64_t d : t.shape) n *= static_cast<size_t>(d);
      if (t.offset + n > layout.numel()) score_fuzz::fail("tensor " + t.name + " lies outside the flat buffer");
    }
    const ModelConfig back = parse_config_json(config_to_json(c), "written/config.json");
    if (!same_config(c, back)) score_fuzz::fail("config_to_json -> parse_config_json changed the config");
  } catch (const Error& e) {
    score_fuzz::fail(std::string("an accepted config fails later: ") + e.what());
  }
  return 0;
}
