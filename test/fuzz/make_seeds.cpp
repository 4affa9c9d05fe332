// Writes the generated part of the seed corpus (test/fuzz/corpus/): tiny but
// complete safetensors files and checkpoint folders, made with the library's
// own writers so they are valid. Run by hand (run.sh --make-seeds) when the
// formats change; the output is committed.
//   make_seeds <corpus dir>
#include <sys/stat.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "score/checkpoint.h"
#include "score/params.h"
#include "score/safetensors.h"

using namespace score;
namespace fs = std::filesystem;

#ifdef SCORE_FUZZ_BUILTIN
// The library is instrumented for driver.cpp's coverage; this tool does not count it.
extern "C" void __sanitizer_cov_trace_pc() {}
#endif

static const std::string kPartSep = "\n#SCORE-FUZZ-PART#\n";

static std::string slurp(const std::string& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

static void put(const std::string& p, const std::string& bytes) {
  std::ofstream f(p, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

static std::vector<float> values(size_t n) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; i++) v[i] = static_cast<float>(static_cast<int>(i % 17) - 8) / 16.0f;
  return v;
}

static ModelConfig tiny(Arch arch) {
  ModelConfig c;
  c.arch = arch;
  c.vocab_size = 5;
  c.n_layer = 1;
  c.d_model = 4;
  c.n_head = 2;
  c.n_kv_head = arch == Arch::GPT2 ? 2 : 1;
  c.head_dim = 2;
  c.d_ff = 6;
  c.max_pos = 3;
  c.norm_eps = 1e-5;
  c.rope_theta = 10000.0;
  c.qkv_bias = arch != Arch::Llama;
  c.o_bias = arch == Arch::GPT2;
  c.tie_embeddings = arch != Arch::Llama;
  c.bos_token_id = 1;
  c.eos_token_id = 2;
  return c;
}

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: make_seeds <corpus dir>\n");
    return 2;
  }
  const std::string out = argv[1];
  const std::string tmp = (fs::temp_directory_path() / "score-make-seeds").string();
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  for (const char* t : {"safetensors", "checkpoint", "config"}) fs::create_directories(out + "/" + t);

  // ---- checkpoints: config.json <sep> model.safetensors [<sep> index]
  struct Ck {
    const char* name;
    Arch arch;
  };
  for (Ck k : {Ck{"gpt2-tied", Arch::GPT2}, Ck{"llama-untied-gqa", Arch::Llama}, Ck{"qwen2-tied", Arch::Qwen2}}) {
    ModelConfig c = tiny(k.arch);
    std::vector<float> p = values(ParamLayout(c).numel());
    const std::string dir = tmp + "/" + k.name;
    save_checkpoint(dir, c, p.data());
    const std::string cfg = slurp(dir + "/config.json"), st = slurp(dir + "/model.safetensors");
    put(out + "/checkpoint/" + k.name, cfg + kPartSep + st);
    put(out + "/safetensors/" + std::string(k.name) + ".safetensors", st);
    put(out + "/config/" + std::string(k.name) + ".json", cfg);
    if (k.arch == Arch::Llama) {
      // The same weights as one shard behind an index file.
      std::string index = "{\"metadata\": {\"total_size\": 0}, \"weight_map\": {";
      const ParamLayout L(c);
      bool first = true;
      for (const HfTensor& t : hf_tensor_map(c, L)) {
        index += std::string(first ? "" : ", ") + "\"" + t.name + "\": \"model-00001-of-00001.safetensors\"";
        first = false;
      }
      index += "}}\n";
      put(out + "/checkpoint/llama-sharded", cfg + kPartSep + st + kPartSep + index);
    }
  }

  // ---- safetensors: every dtype, empty tensors, metadata, an empty file list.
  {
    std::vector<uint16_t> h = {0x3c00, 0x7c00, 0x0001, 0xfc00, 0x7e00, 0x8000};  // 1, inf, subnormal, -inf, nan, -0
    std::vector<uint16_t> b = {0x3f80, 0x7f80, 0xff80, 0x7fc0, 0x0001, 0x8000};
    std::vector<double> d = {1.0, -2.5, 1e300, 1e-300, 0.0, -0.0};
    std::vector<int64_t> i64 = {1, -1, INT64_MAX};
    std::vector<int32_t> i32 = {7, 8};
    std::vector<uint8_t> u8 = {1, 0, 255};
    std::vector<float> f = values(6);
    write_safetensors(tmp + "/dtypes.safetensors",
                      {{"f32", DType::F32, {2, 3}, f.data()},
                       {"f16", DType::F16, {6}, h.data()},
                       {"bf16", DType::BF16, {3, 2}, b.data()},
                       {"f64", DType::F64, {6}, d.data()},
                       {"i64", DType::I64, {3}, i64.data()},
                       {"i32", DType::I32, {1, 2}, i32.data()},
                       {"u8", DType::U8, {3}, u8.data()},
                       {"bool", DType::BOOL, {3}, u8.data()},
                       {"e4m3", DType::F8_E4M3, {1}, u8.data()},
                       {"empty", DType::F32, {0, 4}, nullptr},
                       {"scalar", DType::F32, {}, f.data()}},
                      {{"format", "pt"}, {"note", "caf\xc3\xa9 \xe2\x9c\x93"}});
    put(out + "/safetensors/dtypes.safetensors", slurp(tmp + "/dtypes.safetensors"));
    write_safetensors(tmp + "/none.safetensors", {}, {});
    put(out + "/safetensors/no-tensors.safetensors", slurp(tmp + "/none.safetensors"));
  }
  fs::remove_all(tmp);
  std::printf("seeds written to %s\n", out.c_str());
  return 0;
}
