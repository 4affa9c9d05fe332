// Hugging Face config.json <-> ModelConfig, and ModelConfig::validate.
#include <climits>
#include <cmath>

#include "json.h"
#include "score/config.h"
#include "score/errors.h"

namespace score {

const char* arch_name(Arch arch) {
  switch (arch) {
    case Arch::GPT2: return "gpt2";
    case Arch::Llama: return "llama";
    case Arch::Qwen2: return "qwen2";
  }
  return "?";
}

namespace {

constexpr const char* kSupported = "supported: gpt2, llama, qwen2";
constexpr size_t kMaxConfigValues = 1u << 20;  // real config.json files have a few hundred
constexpr int kMaxLayers = 4096;               // bounds the per-layer tables built from a config

// The config.json spelling of each ModelConfig field, per family, so that
// validate() names the field the user actually wrote.
struct FieldNames {
  const char *vocab, *layers, *hidden, *heads, *kv_heads, *head_dim, *ff, *max_pos, *eps;
};
FieldNames field_names(Arch a) {
  if (a == Arch::GPT2)
    return {"vocab_size", "n_layer", "n_embd", "n_head", "n_head", "head_dim", "n_inner", "n_positions",
            "layer_norm_epsilon"};
  return {"vocab_size",          "num_hidden_layers", "hidden_size",
          "num_attention_heads", "num_key_value_heads", "head_dim",
          "intermediate_size",   "max_position_embeddings", "rms_norm_eps"};
}

// Typed field reads from the config object. JSON null counts as absent for
// optional fields (Hugging Face writes e.g. "n_inner": null for the default).
class Reader {
 public:
  Reader(const json::Value& obj, const std::string& path) : obj_(obj), path_(path) {}

  const json::Value* get(const char* name) const {
    const json::Value* v = obj_.get(name);
    return v && !v->is_null() ? v : nullptr;
  }

  [[noreturn]] void bad(const char* name, const std::string& what) const {
    throw Error(ErrorCode::InvalidArgument, path_ + ": field '" + name + "' " + what);
  }
  [[noreturn]] void unsupported(const char* name, const std::string& what) const {
    throw Error(ErrorCode::Unsupported, path_ + ": field '" + name + "' " + what);
  }

  int pos_int(const json::Value& v, const char* name) const {
    int64_t i = 0;
    if (!v.get_int64(&i) || i <= 0 || i > INT_MAX) bad(name, "must be a positive integer");
    return static_cast<int>(i);
  }
  int req_int(const char* name) const {
    const json::Value* v = obj_.get(name);
    if (!v) throw Error(ErrorCode::InvalidArgument, path_ + ": missing field '" + name + "'");
    return pos_int(*v, name);
  }
  int opt_int(const char* name, int def) const {
    const json::Value* v = get(name);
    return v ? pos_int(*v, name) : def;
  }
  double opt_pos_double(const char* name, double def) const {
    const json::Value* v = get(name);
    if (!v) return def;
    double d = 0;
    if (!v->get_double(&d) || !(d > 0)) bad(name, "must be a positive number");
    return d;
  }
  bool opt_bool(const char* name, bool def) const {
    const json::Value* v = get(name);
    if (!v) return def;
    if (!v->is_bool()) bad(name, "must be true or false");
    return v->as_bool();
  }
  // bos/eos: an integer, or a list of them (Llama 3 lists several eos ids; the
  // first is used), or null/absent (-1).
  int token_id(const char* name) const {
    const json::Value* v = get(name);
    if (!v) return -1;
    if (v->is_array()) {
      if (v->size() == 0) return -1;
      v = &v->at(0);
    }
    int64_t i = 0;
    if (!v->get_int64(&i) || i < 0 || i > INT_MAX) bad(name, "must be a non-negative integer");
    return static_cast<int>(i);
  }
  // A string knob that must have one of the accepted values (absent is fine).
  void require_string(const char* name, std::initializer_list<const char*> accepted) const {
    const json::Value* v = get(name);
    if (!v) return;
    std::string list;
    for (const char* a : accepted) {
      if (v->is_string() && v->as_string() == a) return;
      list += list.empty() ? "'" : ", '";
      list += a;
      list += "'";
    }
    std::string got = v->is_string() ? json::quote(v->as_string()) : json::type_name(v->type());
    unsupported(name, "is " + got + "; supported: " + list);
  }
  // A boolean knob that must not be `bad_value`.
  void require_not(const char* name, bool bad_value) const {
    if (opt_bool(name, !bad_value) == bad_value)
      unsupported(name, std::string("= ") + (bad_value ? "true" : "false") + " is not supported");
  }

 private:
  const json::Value& obj_;
  const std::string& path_;
};

// hidden / heads, with a clear error when it does not divide.
int derive_head_dim(const std::string& path, int hidden, int heads, const char* hidden_name,
                    const char* heads_name) {
  if (hidden % heads != 0)
    throw Error(ErrorCode::InvalidArgument, path + ": field '" + hidden_name + "' (" + std::to_string(hidden) +
                                                ") is not divisible by '" + heads_name + "' (" +
                                                std::to_string(heads) + ")");
  return hidden / heads;
}

ModelConfig parse_gpt2(const Reader& r, const std::string& path) {
  ModelConfig c;
  c.arch = Arch::GPT2;
  c.vocab_size = r.req_int("vocab_size");
  c.max_pos = r.req_int("n_positions");
  c.d_model = r.req_int("n_embd");
  c.n_layer = r.req_int("n_layer");
  c.n_head = r.req_int("n_head");
  c.n_kv_head = c.n_head;
  c.head_dim = derive_head_dim(path, c.d_model, c.n_head, "n_embd", "n_head");
  if (static_cast<int64_t>(c.d_model) * 4 > INT_MAX && !r.get("n_inner")) r.bad("n_embd", "is too large");
  c.d_ff = r.opt_int("n_inner", 4 * c.d_model);
  c.norm_eps = r.opt_pos_double("layer_norm_epsilon", 1e-5);
  // gelu_pytorch_tanh is the same tanh approximation as gelu_new.
  r.require_string("activation_function", {"gelu_new", "gelu_pytorch_tanh"});
  c.tie_embeddings = r.opt_bool("tie_word_embeddings", true);
  c.bos_token_id = r.token_id("bos_token_id");
  c.eos_token_id = r.token_id("eos_token_id");
  r.require_not("scale_attn_by_inverse_layer_idx", true);
  r.require_not("reorder_and_upcast_attn", true);
  r.require_not("scale_attn_weights", false);
  r.require_not("add_cross_attention", true);
  c.qkv_bias = c.o_bias = true;
  return c;
}

// Llama and Qwen2 share the field names; they differ in the attention biases
// (Llama: attention_bias for all four projections; Qwen2: q/k/v only) and
// Qwen2's sliding window.
ModelConfig parse_rotary(const Reader& r, const std::string& path, Arch arch) {
  ModelConfig c;
  c.arch = arch;
  c.vocab_size = r.req_int("vocab_size");
  c.d_model = r.req_int("hidden_size");
  c.d_ff = r.req_int("intermediate_size");
  c.n_layer = r.req_int("num_hidden_layers");
  c.n_head = r.req_int("num_attention_heads");
  c.n_kv_head = r.opt_int("num_key_value_heads", c.n_head);
  if (r.get("head_dim")) {
    c.head_dim = r.opt_int("head_dim", 0);
  } else {
    c.head_dim = derive_head_dim(path, c.d_model, c.n_head, "hidden_size", "num_attention_heads");
  }
  c.max_pos = r.req_int("max_position_embeddings");
  c.norm_eps = r.opt_pos_double("rms_norm_eps", 1e-6);
  c.rope_theta = r.opt_pos_double("rope_theta", 10000.0);
  // Newer transformers versions group the rotary settings in rope_parameters.
  if (const json::Value* rp = r.get("rope_parameters")) {
    if (!rp->is_object()) r.bad("rope_parameters", "must be an object");
    Reader sub(*rp, path);
    sub.require_string("rope_type", {"default"});
    c.rope_theta = sub.opt_pos_double("rope_theta", c.rope_theta);
  }
  // rope_scaling: only absent/null or an explicit {"rope_type": "default"} (no scaling).
  if (const json::Value* rs = r.get("rope_scaling")) {
    const json::Value* t = rs->is_object() ? (rs->get("rope_type") ? rs->get("rope_type") : rs->get("type")) : nullptr;
    if (!t || !t->is_string() || t->as_string() != "default")
      r.unsupported("rope_scaling", "is set; only plain rotary positions are supported");
  }
  r.require_string("hidden_act", {"silu"});
  r.require_not("mlp_bias", true);
  c.tie_embeddings = r.opt_bool("tie_word_embeddings", false);
  c.bos_token_id = r.token_id("bos_token_id");
  c.eos_token_id = r.token_id("eos_token_id");
  if (arch == Arch::Llama) {
    c.qkv_bias = c.o_bias = r.opt_bool("attention_bias", false);
  } else {
    r.require_not("use_sliding_window", true);
    c.qkv_bias = true;
    c.o_bias = false;
  }
  return c;
}

}  // namespace

void ModelConfig::validate(const std::string& where) const {
  SCORE_CHECK(arch == Arch::GPT2 || arch == Arch::Llama || arch == Arch::Qwen2, InvalidArgument,
              where + ": unknown architecture");
  const FieldNames f = field_names(arch);
  const bool rotary = arch != Arch::GPT2;
  auto positive = [&](int v, const char* name) {
    SCORE_CHECK(v > 0, InvalidArgument,
                where + ": field '" + name + "' must be positive (got " + std::to_string(v) + ")");
  };
  positive(vocab_size, f.vocab);
  positive(n_layer, f.layers);
  positive(d_model, f.hidden);
  positive(n_head, f.heads);
  positive(n_kv_head, f.kv_heads);
  positive(head_dim, f.head_dim);
  positive(d_ff, f.ff);
  positive(max_pos, f.max_pos);
  SCORE_CHECK(n_layer <= kMaxLayers, InvalidArgument,
              where + ": field '" + f.layers + "' (" + std::to_string(n_layer) + ") is larger than the supported " +
                  std::to_string(kMaxLayers));
  SCORE_CHECK(n_head % n_kv_head == 0, InvalidArgument,
              where + ": field '" + f.heads + "' (" + std::to_string(n_head) + ") is not a multiple of '" +
                  f.kv_heads + "' (" + std::to_string(n_kv_head) + ")");
  if (!rotary) {
    SCORE_CHECK(n_kv_head == n_head, InvalidArgument, where + ": GPT-2 has as many key/value heads as heads");
    SCORE_CHECK(static_cast<int64_t>(n_head) * head_dim == d_model, InvalidArgument,
                where + ": field 'n_embd' (" + std::to_string(d_model) + ") must equal n_head * head_dim (" +
                    std::to_string(n_head) + " * " + std::to_string(head_dim) + ")");
  } else {
    SCORE_CHECK(head_dim % 2 == 0, InvalidArgument,
                where + ": field 'head_dim' (" + std::to_string(head_dim) + ") must be even for rotary positions");
    SCORE_CHECK(std::isfinite(rope_theta) && rope_theta > 0, InvalidArgument,
                where + ": field 'rope_theta' must be a positive number");
  }
  SCORE_CHECK(std::isfinite(norm_eps) && norm_eps > 0, InvalidArgument,
              where + ": field '" + f.eps + "' must be a positive number");
  auto token = [&](int id, const char* name) {
    SCORE_CHECK(id >= -1 && id < vocab_size, InvalidArgument,
                where + ": field '" + name + "' (" + std::to_string(id) + ") is outside the vocabulary (" +
                    std::to_string(vocab_size) + " tokens)");
  };
  token(bos_token_id, "bos_token_id");
  token(eos_token_id, "eos_token_id");

  // Sizes: every int product the kernels form must stay in int range, and the
  // parameter count must stay below 2^40 (the flat buffer uses size_t offsets).
  const int64_t H = n_head, KVH = n_kv_head, hd = head_dim, C = d_model, F = d_ff, V = vocab_size;
  SCORE_CHECK((H + 2 * KVH) * hd <= INT_MAX, InvalidArgument,
              where + ": heads * head_dim is too large");
  SCORE_CHECK(2 * F <= INT_MAX, InvalidArgument, where + ": field '" + f.ff + "' is too large");
  SCORE_CHECK(static_cast<int64_t>(max_pos) * hd <= INT_MAX && max_pos <= (1 << 24), InvalidArgument,
              where + ": field '" + f.max_pos + "' (" + std::to_string(max_pos) + ") is too large");
  const double qkv = static_cast<double>((H + 2 * KVH) * hd), q = static_cast<double>(H * hd);
  double per_layer = qkv * C + q * C + C * 2.0 + (qkv_bias ? qkv : 0) + (o_bias ? C : 0);
  if (!rotary) per_layer += 2.0 * F * C + F + C + 2.0 * C;  // fc, proj, their biases, norm biases
  else per_layer += 3.0 * F * C;
  double total = static_cast<double>(V) * C + per_layer * static_cast<double>(n_layer) + 2.0 * C;
  if (!rotary) total += static_cast<double>(max_pos) * C;
  if (!tie_embeddings) total += static_cast<double>(V) * C;
  SCORE_CHECK(total <= 1099511627776.0, InvalidArgument,
              where + ": the model would have " + std::to_string(static_cast<long long>(total)) +
                  " parameters, more than the supported 2^40");
}

ModelConfig parse_config_json(const std::string& text, const std::string& path) {
  json::Value root = json::parse(text, path, kMaxConfigValues);
  SCORE_CHECK(root.is_object(), BadFile, path + ": not a JSON object");
  const json::Value* mt = root.get("model_type");
  if (!mt || mt->is_null())
    throw Error(ErrorCode::Unsupported, path + ": missing field 'model_type' (" + kSupported + ")");
  if (!mt->is_string())
    throw Error(ErrorCode::Unsupported, path + ": field 'model_type' must be a string (" + kSupported + ")");
  const std::string& type = mt->as_string();
  Reader r(root, path);
  ModelConfig c;
  if (type == "gpt2") c = parse_gpt2(r, path);
  else if (type == "llama") c = parse_rotary(r, path, Arch::Llama);
  else if (type == "qwen2") c = parse_rotary(r, path, Arch::Qwen2);
  else
    throw Error(ErrorCode::Unsupported,
                path + ": model_type " + json::quote(type) + " is not supported (" + kSupported + ")");
  c.validate(path);
  return c;
}

std::string config_to_json(const ModelConfig& c) {
  c.validate("config_to_json");
  using json::Value;
  auto token = [](int id) { return id < 0 ? Value::null() : Value::integer(id); };
  Value o = Value::object();
  Value archs = Value::array();
  if (c.arch == Arch::GPT2) {
    SCORE_CHECK(c.qkv_bias && c.o_bias, InvalidArgument,
                "config_to_json: GPT-2 always has q/k/v and output-projection biases");
    archs.push(Value::string("GPT2LMHeadModel"));
    o.append("architectures", std::move(archs));
    o.append("model_type", Value::string("gpt2"));
    o.append("vocab_size", Value::integer(c.vocab_size));
    o.append("n_positions", Value::integer(c.max_pos));
    o.append("n_ctx", Value::integer(c.max_pos));
    o.append("n_embd", Value::integer(c.d_model));
    o.append("n_layer", Value::integer(c.n_layer));
    o.append("n_head", Value::integer(c.n_head));
    o.append("n_inner", Value::integer(c.d_ff));
    o.append("activation_function", Value::string("gelu_new"));
    o.append("layer_norm_epsilon", Value::number(c.norm_eps));
    o.append("scale_attn_weights", Value::boolean(true));
  } else {
    const bool llama = c.arch == Arch::Llama;
    if (llama) {
      SCORE_CHECK(c.qkv_bias == c.o_bias, InvalidArgument,
                  "config_to_json: Llama's attention_bias covers q/k/v and the output projection together");
    } else {
      SCORE_CHECK(c.qkv_bias && !c.o_bias, InvalidArgument,
                  "config_to_json: Qwen2 has q/k/v biases and no output-projection bias");
    }
    archs.push(Value::string(llama ? "LlamaForCausalLM" : "Qwen2ForCausalLM"));
    o.append("architectures", std::move(archs));
    o.append("model_type", Value::string(llama ? "llama" : "qwen2"));
    o.append("vocab_size", Value::integer(c.vocab_size));
    o.append("hidden_size", Value::integer(c.d_model));
    o.append("intermediate_size", Value::integer(c.d_ff));
    o.append("num_hidden_layers", Value::integer(c.n_layer));
    o.append("num_attention_heads", Value::integer(c.n_head));
    o.append("num_key_value_heads", Value::integer(c.n_kv_head));
    o.append("head_dim", Value::integer(c.head_dim));
    o.append("max_position_embeddings", Value::integer(c.max_pos));
    o.append("hidden_act", Value::string("silu"));
    o.append("rms_norm_eps", Value::number(c.norm_eps));
    o.append("rope_theta", Value::number(c.rope_theta));
    o.append("rope_scaling", Value::null());
    if (llama) {
      o.append("attention_bias", Value::boolean(c.qkv_bias));
      o.append("mlp_bias", Value::boolean(false));
    } else {
      o.append("use_sliding_window", Value::boolean(false));
    }
  }
  o.append("tie_word_embeddings", Value::boolean(c.tie_embeddings));
  o.append("bos_token_id", token(c.bos_token_id));
  o.append("eos_token_id", token(c.eos_token_id));
  o.append("torch_dtype", Value::string("float32"));
  return json::write(o, true);
}

}  // namespace score
