#include "score/checkpoint.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <new>
#include <system_error>
#include <unordered_map>

#include "json.h"
#include "score/errors.h"
#include "score/memory.h"
#include "score/safetensors.h"

namespace score {

namespace {

// Size caps for the JSON side files (real ones are a few KB).
constexpr size_t kMaxConfigBytes = 4u << 20;
constexpr size_t kMaxIndexBytes = 16u << 20;
constexpr size_t kMaxIndexValues = 1u << 22;
const char* kGpt2Prefix = "transformer.";

std::string join(const std::string& dir, const std::string& name) {
  if (dir.empty()) return name;
  return dir.back() == '/' ? dir + name : dir + "/" + name;
}

bool file_exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

bool starts_with(const std::string& s, const char* p) { return s.rfind(p, 0) == 0; }
bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// "h.<digits>.attn.bias" / "h.<digits>.attn.masked_bias": GPT-2's old
// causal-mask buffers, not parameters.
bool is_gpt2_mask_buffer(const std::string& n) {
  if (!starts_with(n, "h.")) return false;
  size_t i = 2;
  while (i < n.size() && n[i] >= '0' && n[i] <= '9') i++;
  if (i == 2) return false;
  std::string rest = n.substr(i);
  return rest == ".attn.bias" || rest == ".attn.masked_bias";
}

// A tensor found in one of the checkpoint's files.
struct Found {
  std::string name;  // as written in the file
  const SafetensorsFile* file;
  const SafeTensorInfo* info;
};

// Maps the found tensors onto the layout of cfg and converts them into a new
// flat buffer. `missing_where` names the file in "missing tensor" errors;
// `shape_source` says where expected shapes come from.
std::vector<float> assemble(const std::vector<Found>& found, const ModelConfig& cfg,
                            const std::string& missing_where, const std::string& shape_source) {
  const ParamLayout layout(cfg);
  const std::vector<HfTensor> expected = hf_tensor_map(cfg, layout);
  std::unordered_map<std::string, size_t> index;
  for (size_t i = 0; i < expected.size(); i++) index.emplace(expected[i].name, i);

  // Pass 1: match names, shapes and dtypes before converting anything.
  std::vector<const Found*> source(expected.size(), nullptr);
  bool prefixed = false;  // the file uses GPT-2's "transformer." names
  for (const Found& f : found) {
    std::string n = f.name;
    if (cfg.is_gpt2() && starts_with(n, kGpt2Prefix)) {
      n = n.substr(std::string(kGpt2Prefix).size());
      prefixed = true;
    }
    if (cfg.is_gpt2() ? is_gpt2_mask_buffer(n) : ends_with(n, ".rotary_emb.inv_freq")) continue;
    if (cfg.tie_embeddings && n == "lm_head.weight") continue;  // tied: wte is the head
    auto it = index.find(n);
    const std::string& file = f.file->path();
    if (it == index.end())
      throw Error(ErrorCode::BadFile, file + ": unexpected tensor " + json::quote(f.name));
    const HfTensor& e = expected[it->second];
    if (source[it->second])
      throw Error(ErrorCode::BadFile, file + ": tensor " + json::quote(f.name) + " appears more than once");
    if (f.info->shape != e.shape)
      throw Error(ErrorCode::BadFile, file + ": tensor " + json::quote(f.name) + " has shape " +
                                          shape_str(f.info->shape) + ", expected " + shape_str(e.shape) +
                                          " from " + shape_source);
    DType dt = f.info->dtype;
    if (dt != DType::F32 && dt != DType::F16 && dt != DType::BF16 && dt != DType::F64)
      throw Error(ErrorCode::Unsupported, file + ": tensor " + json::quote(f.name) + ": dtype " +
                                              dtype_name(dt) + " cannot be converted to float");
    source[it->second] = &f;
  }
  for (size_t i = 0; i < expected.size(); i++) {
    if (source[i]) continue;
    std::string name = expected[i].name;
    if (cfg.is_gpt2() && prefixed && name != "lm_head.weight") name = kGpt2Prefix + name;
    throw Error(ErrorCode::NotFound, missing_where + ": missing tensor " + json::quote(name));
  }

  // Pass 2: convert (into this vector, then the backend's copy).
  check_memory(2 * layout.numel() * sizeof(float), missing_where + ": " + std::to_string(layout.numel()) + " parameters");
  std::vector<float> params;
  try {
    params.resize(layout.numel());
    std::vector<float> tmp;
    for (size_t i = 0; i < expected.size(); i++) {
      const HfTensor& e = expected[i];
      const Found& f = *source[i];
      float* dst = params.data() + e.offset;
      if (!e.transpose) {
        f.file->to_float(*f.info, dst);
        continue;
      }
      // Conv1D: HF [in, out] -> internal (out, in).
      const size_t in = static_cast<size_t>(e.shape[0]), out = static_cast<size_t>(e.shape[1]);
      tmp.resize(in * out);
      f.file->to_float(*f.info, tmp.data());
      for (size_t r = 0; r < in; r++)
        for (size_t c = 0; c < out; c++) dst[c * in + r] = tmp[r * out + c];
    }
  } catch (const std::bad_alloc&) {
    throw Error(ErrorCode::OutOfMemory, missing_where + ": out of memory for " +
                                            std::to_string(layout.numel()) + " parameters");
  }
  return params;
}

// A shard name from an index file must be a plain file name in the folder.
bool plain_file_name(const std::string& s) {
  if (s.empty() || s == "." || s == "..") return false;
  for (char c : s)
    if (c == '/' || c == '\\' || c == '\0') return false;
  return true;
}

}  // namespace

std::vector<HfTensor> hf_tensor_map(const ModelConfig& c, const ParamLayout& L) {
  std::vector<HfTensor> m;
  auto add = [&](std::string name, std::vector<int64_t> shape, size_t offset, bool transpose = false) {
    m.push_back(HfTensor{std::move(name), std::move(shape), offset, transpose});
  };
  const int64_t V = c.vocab_size, C = c.d_model, F = c.d_ff;
  if (c.is_gpt2()) {
    SCORE_CHECK(c.qkv_bias && c.o_bias, InvalidArgument,
                "GPT-2 checkpoints have q/k/v and output-projection biases (qkv_bias and o_bias must be set)");
    add("wte.weight", {V, C}, L.wte);
    add("wpe.weight", {c.max_pos, C}, L.wpe);
    for (int l = 0; l < c.n_layer; l++) {
      const LayerOffsets& o = L.layers[l];
      const std::string p = "h." + std::to_string(l) + ".";
      add(p + "ln_1.weight", {C}, o.ln1_w);
      add(p + "ln_1.bias", {C}, o.ln1_b);
      add(p + "attn.c_attn.weight", {C, 3 * C}, o.qkv_w, true);
      add(p + "attn.c_attn.bias", {3 * C}, o.qkv_b);
      add(p + "attn.c_proj.weight", {C, C}, o.attn_o_w, true);
      add(p + "attn.c_proj.bias", {C}, o.attn_o_b);
      add(p + "ln_2.weight", {C}, o.ln2_w);
      add(p + "ln_2.bias", {C}, o.ln2_b);
      add(p + "mlp.c_fc.weight", {C, F}, o.fc_w, true);
      add(p + "mlp.c_fc.bias", {F}, o.fc_b);
      add(p + "mlp.c_proj.weight", {F, C}, o.proj_w, true);
      add(p + "mlp.c_proj.bias", {C}, o.proj_b);
    }
    add("ln_f.weight", {C}, L.lnf_w);
    add("ln_f.bias", {C}, L.lnf_b);
  } else {
    const int64_t Q = c.q_dim(), KV = c.kv_dim();
    add("model.embed_tokens.weight", {V, C}, L.wte);
    for (int l = 0; l < c.n_layer; l++) {
      const LayerOffsets& o = L.layers[l];
      const std::string p = "model.layers." + std::to_string(l) + ".";
      add(p + "input_layernorm.weight", {C}, o.ln1_w);
      // q, k, v are consecutive row blocks of qkv_w (and entries of qkv_b).
      add(p + "self_attn.q_proj.weight", {Q, C}, o.qkv_w);
      add(p + "self_attn.k_proj.weight", {KV, C}, o.qkv_w + static_cast<size_t>(Q * C));
      add(p + "self_attn.v_proj.weight", {KV, C}, o.qkv_w + static_cast<size_t>((Q + KV) * C));
      if (c.qkv_bias) {
        add(p + "self_attn.q_proj.bias", {Q}, o.qkv_b);
        add(p + "self_attn.k_proj.bias", {KV}, o.qkv_b + static_cast<size_t>(Q));
        add(p + "self_attn.v_proj.bias", {KV}, o.qkv_b + static_cast<size_t>(Q + KV));
      }
      add(p + "self_attn.o_proj.weight", {C, Q}, o.attn_o_w);
      if (c.o_bias) add(p + "self_attn.o_proj.bias", {C}, o.attn_o_b);
      add(p + "post_attention_layernorm.weight", {C}, o.ln2_w);
      // gate rows [0, F), up rows [F, 2F) of gate_up_w.
      add(p + "mlp.gate_proj.weight", {F, C}, o.gate_up_w);
      add(p + "mlp.up_proj.weight", {F, C}, o.gate_up_w + static_cast<size_t>(F * C));
      add(p + "mlp.down_proj.weight", {C, F}, o.down_w);
    }
    add("model.norm.weight", {C}, L.lnf_w);
  }
  if (!c.tie_embeddings) add("lm_head.weight", {V, C}, L.lm_head_w);
  return m;
}

ModelConfig read_config_file(const std::string& path) {
  return parse_config_json(read_file(path, kMaxConfigBytes), path);
}

Checkpoint load_checkpoint(const std::string& dir) {
  Checkpoint ck;
  ck.config = read_config_file(join(dir, "config.json"));

  // Open the weight files and list every tensor with the file that holds it.
  std::vector<SafetensorsFile> files;
  std::vector<Found> found;
  std::string where;  // the file named in "missing tensor" errors
  const std::string single = join(dir, "model.safetensors");
  const std::string index_path = join(dir, "model.safetensors.index.json");
  if (file_exists(single) || !file_exists(index_path)) {
    files.push_back(SafetensorsFile::open(single));  // NotFound when neither exists
    for (const SafeTensorInfo& t : files[0].tensors()) found.push_back({t.name, &files[0], &t});
    where = single;
  } else {
    json::Value idx = json::parse(read_file(index_path, kMaxIndexBytes), index_path, kMaxIndexValues);
    SCORE_CHECK(idx.is_object(), BadFile, index_path + ": not a JSON object");
    const json::Value* wm = idx.get("weight_map");
    SCORE_CHECK(wm, BadFile, index_path + ": missing field 'weight_map'");
    SCORE_CHECK(wm->is_object(), BadFile, index_path + ": field 'weight_map' must be an object");
    // Open each shard once (the vector is filled first, so pointers into it
    // stay valid afterwards).
    std::vector<std::string> shard_names;
    std::vector<size_t> shard_of(wm->size());
    for (size_t i = 0; i < wm->size(); i++) {
      const json::Value& v = wm->at(i);
      SCORE_CHECK(v.is_string(), BadFile,
                  index_path + ": weight_map entry " + json::quote(wm->key(i)) + " must be a file name");
      const std::string& shard = v.as_string();
      SCORE_CHECK(plain_file_name(shard), BadFile,
                  index_path + ": shard " + json::quote(shard) + " of tensor " + json::quote(wm->key(i)) +
                      " must be a plain file name inside the checkpoint folder");
      size_t k = 0;
      while (k < shard_names.size() && shard_names[k] != shard) k++;
      if (k == shard_names.size()) shard_names.push_back(shard);
      shard_of[i] = k;
    }
    files.reserve(shard_names.size());
    for (const std::string& s : shard_names) files.push_back(SafetensorsFile::open(join(dir, s)));
    for (size_t i = 0; i < wm->size(); i++) {
      const SafetensorsFile& f = files[shard_of[i]];
      const SafeTensorInfo* t = f.find(wm->key(i));
      SCORE_CHECK(t, NotFound,
                  f.path() + ": missing tensor " + json::quote(wm->key(i)) + " (listed in " + index_path + ")");
      found.push_back({wm->key(i), &f, t});
    }
    where = index_path;
  }

  // Untied in config.json but no lm_head.weight: the head is the embedding.
  if (!ck.config.tie_embeddings) {
    bool has_head = false;
    for (const Found& f : found) has_head = has_head || f.name == "lm_head.weight";
    if (!has_head) ck.config.tie_embeddings = true;
  }
  ck.params = assemble(found, ck.config, where, "config.json");
  return ck;
}

std::vector<float> load_flat_tensors(const std::string& path, const ModelConfig& cfg) {
  cfg.validate(path);
  SafetensorsFile f = SafetensorsFile::open(path);
  std::vector<Found> found;
  for (const SafeTensorInfo& t : f.tensors()) found.push_back({t.name, &f, &t});
  return assemble(found, cfg, path, "the model config");
}

void save_checkpoint(const std::string& dir, const ModelConfig& cfg, const float* params) {
  SCORE_CHECK(params != nullptr, InvalidArgument, dir + ": save_checkpoint: no parameters");
  const std::string config_text = config_to_json(cfg);  // validates cfg
  const ParamLayout layout(cfg);
  const std::vector<HfTensor> map = hf_tensor_map(cfg, layout);

  std::vector<SafeTensorView> views;
  std::vector<std::vector<float>> transposed;  // keeps the Conv1D copies alive
  try {
    for (const HfTensor& e : map) {
      SafeTensorView v;
      v.name = cfg.is_gpt2() && e.name != "lm_head.weight" ? kGpt2Prefix + e.name : e.name;
      v.dtype = DType::F32;
      v.shape = e.shape;
      const float* src = params + e.offset;
      if (e.transpose) {
        // internal (out, in) -> HF [in, out]
        const size_t in = static_cast<size_t>(e.shape[0]), out = static_cast<size_t>(e.shape[1]);
        std::vector<float> t(in * out);
        for (size_t r = 0; r < in; r++)
          for (size_t c = 0; c < out; c++) t[r * out + c] = src[c * in + r];
        transposed.push_back(std::move(t));
        src = transposed.back().data();
      }
      v.data = src;
      views.push_back(std::move(v));
    }
  } catch (const std::bad_alloc&) {
    throw Error(ErrorCode::OutOfMemory, dir + ": out of memory preparing the checkpoint");
  }

  make_dirs(dir);
  write_safetensors(join(dir, "model.safetensors"), views, {{"format", "pt"}});
  write_file_atomic(join(dir, "config.json"), {{config_text.data(), config_text.size()}});
  // A stale index from an earlier sharded save would point other tools at old shards.
  const std::string index_path = join(dir, "model.safetensors.index.json");
  if (::unlink(index_path.c_str()) != 0 && errno != ENOENT)
    throw Error(ErrorCode::Io, index_path + ": " + std::generic_category().message(errno));
}

}  // namespace score
