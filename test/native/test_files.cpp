// The file layer: JSON, safetensors, config.json, Hugging Face checkpoints.
#define SCORE_TEST_MAIN
#include "check.h"

#include <stdlib.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>

#include "core/json.h"
#include "score/checkpoint.h"
#include "score/config.h"
#include "score/errors.h"
#include "score/params.h"
#include "score/safetensors.h"

using namespace score;
namespace fs = std::filesystem;

namespace {

// A fresh directory under /tmp, removed with everything in it at scope exit.
struct TempDir {
  std::string path;
  TempDir() {
    char tmpl[] = "/tmp/score-files-XXXXXX";
    const char* p = ::mkdtemp(tmpl);
    if (!p) throw std::runtime_error("mkdtemp failed");
    path = p;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::string operator/(const std::string& name) const { return path + "/" + name; }
};

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::string read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

std::string le64(uint64_t n) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; i++) s[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  return s;
}

// A safetensors file from a header text and data bytes.
std::string st_bytes(const std::string& header, const std::string& data) {
  return le64(header.size()) + header + data;
}

template <typename T>
std::string raw(const std::vector<T>& v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(T));
}

bool has_tmp_leftovers(const std::string& dir) {
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().filename().string().find(".tmp-") != std::string::npos) return true;
  return false;
}

// Deterministic pseudo-random floats (no global state).
std::vector<float> random_params(size_t n, uint64_t seed) {
  std::vector<float> v(n);
  uint64_t s = seed * 6364136223846793005ull + 1442695040888963407ull;
  for (size_t i = 0; i < n; i++) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    v[i] = static_cast<float>(static_cast<int64_t>(s >> 33) % 2000001 - 1000000) * 1e-6f;
  }
  return v;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

bool same_config(const ModelConfig& a, const ModelConfig& b) {
  bool rope = a.is_gpt2() || a.rope_theta == b.rope_theta;
  return a.arch == b.arch && a.vocab_size == b.vocab_size && a.n_layer == b.n_layer && a.d_model == b.d_model &&
         a.n_head == b.n_head && a.n_kv_head == b.n_kv_head && a.head_dim == b.head_dim && a.d_ff == b.d_ff &&
         a.max_pos == b.max_pos && a.norm_eps == b.norm_eps && rope && a.qkv_bias == b.qkv_bias &&
         a.o_bias == b.o_bias && a.tie_embeddings == b.tie_embeddings && a.bos_token_id == b.bos_token_id &&
         a.eos_token_id == b.eos_token_id;
}

ModelConfig gpt2_cfg() {
  ModelConfig c;
  c.arch = Arch::GPT2;
  c.vocab_size = 11;
  c.n_layer = 2;
  c.d_model = 8;
  c.n_head = 2;
  c.n_kv_head = 2;
  c.head_dim = 4;
  c.d_ff = 32;
  c.max_pos = 5;
  c.norm_eps = 1e-5;
  c.qkv_bias = c.o_bias = true;
  c.tie_embeddings = true;
  c.bos_token_id = c.eos_token_id = 10;
  return c;
}

ModelConfig llama_cfg() {  // GQA: 4 heads, 2 kv heads, untied
  ModelConfig c;
  c.arch = Arch::Llama;
  c.vocab_size = 13;
  c.n_layer = 2;
  c.d_model = 16;
  c.n_head = 4;
  c.n_kv_head = 2;
  c.head_dim = 4;
  c.d_ff = 24;
  c.max_pos = 32;
  c.norm_eps = 1e-6;
  c.rope_theta = 500000.0;
  c.qkv_bias = c.o_bias = false;
  c.tie_embeddings = false;
  c.bos_token_id = 1;
  c.eos_token_id = 2;
  return c;
}

ModelConfig qwen2_cfg() {  // tied, q/k/v biases
  ModelConfig c = llama_cfg();
  c.arch = Arch::Qwen2;
  c.qkv_bias = true;
  c.o_bias = false;
  c.tie_embeddings = true;
  c.rope_theta = 1000000.0;
  c.bos_token_id = -1;
  return c;
}

}  // namespace

// ============================================================== JSON

TEST(json_round_trip) {
  const std::string doc =
      R"({"a":1,"b":[true,false,null],"c":{"z":"x","y":-0.5e-3},"d":"caf\u00e9 \ud83d\ude00","e":[],"f":{},)"
      R"("g":12345678901234567,"h":"q\"\\\/\b\f\n\r\t\u0001"})";
  json::Value v = json::parse(doc, "t.json");
  CHECK(v.is_object());
  CHECK(v.size() == 8);
  CHECK(v.key(0) == "a" && v.key(7) == "h");  // key order kept
  CHECK(v.get("d")->as_string() == "caf\xc3\xa9 \xf0\x9f\x98\x80");
  CHECK(v.get("h")->as_string() == std::string("q\"\\/\b\f\n\r\t\x01"));
  int64_t i = 0;
  CHECK(v.get("g")->get_int64(&i) && i == 12345678901234567ll);
  double d = 0;
  CHECK(v.get("c")->get("y")->get_double(&d) && d == -0.5e-3);
  CHECK(v.get("missing") == nullptr);

  std::string compact = json::write(v);
  CHECK(compact ==
        "{\"a\":1,\"b\":[true,false,null],\"c\":{\"z\":\"x\",\"y\":-0.5e-3},\"d\":\"caf\xc3\xa9 \xf0\x9f\x98\x80\","
        "\"e\":[],\"f\":{},\"g\":12345678901234567,\"h\":\"q\\\"\\\\/\\b\\f\\n\\r\\t\\u0001\"}");
  std::string pretty = json::write(v, true);
  CHECK(pretty.find("{\n  \"a\": 1,\n  \"b\": [\n    true,") == 0);
  CHECK(json::write(json::parse(pretty, "p.json")) == compact);
  CHECK(json::write(json::parse(compact, "c.json")) == compact);
}

TEST(json_numbers) {
  auto num = [](const std::string& s) { return json::parse(s, "n.json"); };
  int64_t i = 0;
  CHECK(num("9007199254740993").get_int64(&i) && i == 9007199254740993ll);  // 2^53 + 1, exact
  CHECK(num("9223372036854775807").get_int64(&i) && i == std::numeric_limits<int64_t>::max());
  CHECK(num("-9223372036854775808").get_int64(&i) && i == std::numeric_limits<int64_t>::min());
  CHECK(!num("9223372036854775808").get_int64(&i));
  CHECK(num("2.0").get_int64(&i) && i == 2);
  CHECK(num("1e3").get_int64(&i) && i == 1000);
  CHECK(!num("1.5").get_int64(&i));
  CHECK(!num("1e300").get_int64(&i));
  double d = 0;
  CHECK(num("1e-05").get_double(&d) && d == 1e-5);
  CHECK(!num("1e999").get_double(&d));
  CHECK(!num("\"1\"").get_int64(&i));
  // Writer: shortest round-trip text, floats keep a ".0".
  CHECK(json::write(json::Value::number(1e-5)) == "1e-05");
  CHECK(json::write(json::Value::number(10000.0)) == "10000.0");
  CHECK(json::write(json::Value::number(0.1)) == "0.1");
  CHECK(json::write(json::Value::integer(-42)) == "-42");
  CHECK_THROWS(json::Value::number(std::nan("")), InvalidArgument, "non-finite");
  for (double x : {1e-6, 3.141592653589793, 1.0 / 3.0, 6.02e23, -2.5e-300}) {
    double back = 0;
    CHECK(json::parse(json::write(json::Value::number(x)), "x").get_double(&back) && back == x);
  }
}

TEST(json_writer_escaping) {
  json::Value o = json::Value::object();
  o.set("k\n", json::Value::string(std::string("a\x1f\x7f\"\\z", 6)));
  o.set("k\n", json::Value::string("replaced"));  // set replaces in place
  o.set("u", json::Value::string("\xe2\x82\xac"));
  CHECK(json::write(o) == "{\"k\\n\":\"replaced\",\"u\":\"\xe2\x82\xac\"}");
  json::Value s = json::Value::string(std::string("a\x1f\x7f\"\\z", 6));
  CHECK(json::write(s) == "\"a\\u001f\x7f\\\"\\\\z\"");
  CHECK(json::parse(json::write(s), "s").as_string() == s.as_string());
  CHECK_THROWS(json::write(json::Value::string("\xff")), InvalidArgument, "UTF-8");
  CHECK(json::quote("a\nb") == "'a\\x0ab'");
  CHECK(json::quote(std::string(300, 'x')).size() == 200 + 2 + 3);
}

TEST(json_malformed) {
  const char* bad[] = {
      "",                          // empty
      "   ",                       // only whitespace
      "{",                         // truncated
      "[1,2",                      // truncated
      "{\"a\":",                   // truncated
      "\"abc",                     // unterminated string
      "{\"a\":1} x",               // trailing garbage
      "[1] [2]",                   // two documents
      "[1,]",                      // trailing comma
      "{\"a\":1,}",                // trailing comma
      "{\"a\" 1}",                 // missing colon
      "{a:1}",                     // unquoted key
      "[1 2]",                     // missing comma
      "01",                        // leading zero
      "1.",                        // bad fraction
      "-",                         // bare minus
      ".5",                        // no integer part
      "1e",                        // bad exponent
      "NaN",                       // not JSON
      "Infinity",                  // not JSON
      "tru",                       // truncated literal
      "nul",                       // truncated literal
      "\"\\x\"",                   // bad escape
      "\"\\u12\"",                 // short \u
      "\"\\u12g4\"",               // non-hex \u
      "\"\\ud800\"",               // lone high surrogate
      "\"\\udc00\"",               // lone low surrogate
      "\"\\ud800\\u0041\"",        // high surrogate + non-low
      "\"\\ud800x\"",              // high surrogate + text
      "\"a\tb\"",                  // raw control character
      "\"\xff\"",                  // invalid UTF-8 byte
      "\"\xc0\xaf\"",              // overlong encoding
      "\"\xed\xa0\x80\"",          // UTF-8 encoded surrogate
      "\"\xf4\x90\x80\x80\"",      // above U+10FFFF
      "\"\xe2\x82\"",              // truncated sequence
      "{\"a\":1,\"a\":2}",         // duplicate key
      "// comment\n1",             // comments are not JSON
      "[1]\x00",                   // NUL after the document (length includes it below)
  };
  for (const char* b : bad) {
    std::string text = b;
    if (text == "[1]") text.push_back('\0');
    bool thrown = false;
    try {
      json::parse(text, "bad.json");
    } catch (const Error& e) {
      thrown = e.code() == ErrorCode::BadFile && std::string(e.what()).find("bad.json: invalid JSON at byte ") == 0;
      if (!thrown) std::fprintf(stderr, "  wrong error for %s: %s\n", b, e.what());
    }
    if (!thrown) std::fprintf(stderr, "  accepted: %s\n", b);
    CHECK(thrown);
  }
  CHECK_THROWS(json::parse("{\"a\":1,\"a\":2}", "d.json"), BadFile, "duplicate key 'a'");
  CHECK_THROWS(json::parse("\"\\ud800\"", "s.json"), BadFile, "s.json: invalid JSON at byte 1: lone surrogate");
  CHECK_THROWS(json::parse("[1,2] x", "g.json"), BadFile, "at byte 6: unexpected data after the document");
  // Duplicate keys in a large object (the sorted check).
  std::string big = "{";
  for (int i = 0; i < 40; i++) big += "\"k" + std::to_string(i) + "\":" + std::to_string(i) + ",";
  big += "\"k7\":0}";
  CHECK_THROWS(json::parse(big, "big.json"), BadFile, "duplicate key 'k7'");
}

TEST(json_depth_limit) {
  // 64 levels parse; 65 do not; a million do not crash.
  std::string ok = std::string(64, '[') + std::string(64, ']');
  CHECK(json::parse(ok, "d").is_array());
  std::string deep = std::string(65, '[') + std::string(65, ']');
  CHECK_THROWS(json::parse(deep, "deep.json"), BadFile, "nesting deeper than 64");
  std::string bomb(1000000, '[');
  CHECK_THROWS(json::parse(bomb, "bomb.json"), BadFile, "bomb.json: invalid JSON at byte 64: nesting");
  // The value budget: a flat array of many small values.
  std::string many = "[";
  for (int i = 0; i < 1000; i++) many += "0,";
  many += "0]";
  CHECK(json::parse(many, "m", 1002).size() == 1001);  // the array and its 1001 numbers
  CHECK_THROWS(json::parse(many, "m.json", 1001), BadFile, "too many values");
  std::string obj_bomb;
  for (int i = 0; i < 100000; i++) obj_bomb += "{\"a\":";
  CHECK_THROWS(json::parse(obj_bomb, "ob.json"), BadFile, "nesting deeper than 64");
}

// ============================================================== safetensors

TEST(safetensors_round_trip_f32) {
  TempDir dir;
  const std::string path = dir / "t.safetensors";
  std::vector<float> a = {1.5f, -2.25f, 3e-30f, std::numeric_limits<float>::infinity(), 0.f, -0.f};
  std::vector<float> b = {42.f};
  std::vector<int32_t> c = {7, -8, 9};
  std::vector<double> d = {0.1, -1e300};
  write_safetensors(path,
                    {{"a", DType::F32, {2, 3}, a.data()},
                     {"scalar", DType::F32, {}, b.data()},
                     {"empty", DType::F32, {0, 4}, nullptr},
                     {"ints", DType::I32, {3}, c.data()},
                     {"f64", DType::F64, {2}, d.data()}},
                    {{"format", "pt"}, {"note", "h\xc3\xa9"}});
  CHECK(!has_tmp_leftovers(dir.path));
  std::string bytes = read_bytes(path);
  uint64_t n = 0;
  for (int i = 7; i >= 0; i--) n = (n << 8) | static_cast<unsigned char>(bytes[i]);
  CHECK(n % 8 == 0);
  CHECK(bytes.size() == 8 + n + 6 * 4 + 4 + 3 * 4 + 2 * 8);
  CHECK(bytes.substr(8, 14) == "{\"__metadata__");

  SafetensorsFile f = SafetensorsFile::open(path);
  CHECK(f.tensors().size() == 5);
  CHECK(f.tensors()[0].name == "a");  // header order
  CHECK(f.metadata().size() == 2 && f.metadata()[0].first == "format" && f.metadata()[1].second == "h\xc3\xa9");
  const SafeTensorInfo* ta = f.find("a");
  CHECK(ta && ta->shape == std::vector<int64_t>({2, 3}) && ta->dtype == DType::F32 && ta->numel == 6);
  std::vector<float> out(6);
  f.to_float(*ta, out.data());
  CHECK(std::memcmp(out.data(), a.data(), 24) == 0);
  const SafeTensorInfo* ts = f.find("scalar");
  CHECK(ts && ts->shape.empty() && ts->numel == 1);
  float s = 0;
  f.to_float(*ts, &s);
  CHECK(s == 42.f);
  const SafeTensorInfo* te = f.find("empty");
  CHECK(te && te->numel == 0 && te->begin == te->end);
  f.to_float(*te, nullptr);
  const SafeTensorInfo* ti = f.find("ints");
  std::vector<int32_t> ci(3);
  f.read_raw(*ti, ci.data());
  CHECK(ci == c);
  CHECK_THROWS(f.to_float(*ti, out.data()), Unsupported, "t.safetensors: tensor 'ints': dtype I32");
  const SafeTensorInfo* td = f.find("f64");
  f.to_float(*td, out.data());
  CHECK(out[0] == 0.1f && out[1] == -std::numeric_limits<float>::infinity());
  CHECK(f.find("nope") == nullptr);

  // Moving keeps the file usable.
  SafetensorsFile g = std::move(f);
  g.to_float(*g.find("scalar"), &s);
  CHECK(s == 42.f);
}

TEST(safetensors_f16_bf16_conversion) {
  TempDir dir;
  const std::string path = dir / "h.safetensors";
  std::vector<uint16_t> h = {0x3c00, 0xc000, 0x0001, 0x03ff, 0x8001, 0x0400, 0x7bff,
                             0x7c00, 0xfc00, 0x7e00, 0x8000, 0x3555};
  std::vector<uint16_t> bf = {0x3f80, 0xc049, 0x7f80, 0x0001, 0xff80};
  std::string header =
      "{\"h\":{\"dtype\":\"F16\",\"shape\":[12],\"data_offsets\":[0,24]},"
      "\"bf\":{\"dtype\":\"BF16\",\"shape\":[5],\"data_offsets\":[24,34]}}";
  write_bytes(path, st_bytes(header, raw(h) + raw(bf)));
  SafetensorsFile f = SafetensorsFile::open(path);
  std::vector<float> o(12);
  f.to_float(*f.find("h"), o.data());
  CHECK(o[0] == 1.0f);
  CHECK(o[1] == -2.0f);
  CHECK(o[2] == std::ldexp(1.0f, -24));           // smallest subnormal
  CHECK(o[3] == 1023.0f * std::ldexp(1.0f, -24));  // largest subnormal
  CHECK(o[4] == -std::ldexp(1.0f, -24));
  CHECK(o[5] == std::ldexp(1.0f, -14));  // smallest normal
  CHECK(o[6] == 65504.0f);
  CHECK(std::isinf(o[7]) && o[7] > 0);
  CHECK(std::isinf(o[8]) && o[8] < 0);
  CHECK(std::isnan(o[9]));
  CHECK(o[10] == 0.0f && std::signbit(o[10]));
  CHECK(o[11] == 0.333251953125f);
  std::vector<float> b(5);
  f.to_float(*f.find("bf"), b.data());
  CHECK(b[0] == 1.0f);
  CHECK(b[1] == -3.140625f);
  CHECK(std::isinf(b[2]) && b[2] > 0);
  CHECK(b[3] == std::ldexp(1.0f, -133));  // bf16 subnormal: top half of the float bits
  CHECK(std::isinf(b[4]) && b[4] < 0);
}

TEST(safetensors_bad_headers) {
  TempDir dir;
  const std::string path = dir / "bad.safetensors";
  auto open_bad = [&](const std::string& bytes) {
    write_bytes(path, bytes);
    SafetensorsFile::open(path);
  };
  auto hdr = [](const std::string& entry) { return "{\"w\":" + entry + "}"; };
  const std::string data16(16, '\0');

  CHECK_THROWS(SafetensorsFile::open(dir / "nope.safetensors"), NotFound, "nope.safetensors");
  CHECK_THROWS(SafetensorsFile::open(dir.path), BadFile, "not a regular file");
  CHECK_THROWS(open_bad("12345"), BadFile, path + ": header: file is 5 bytes");
  CHECK_THROWS(open_bad(le64(100) + "{}"), BadFile, path + ": header: length 100 runs past the end");
  CHECK_THROWS(open_bad(le64(1ull << 40) + "{}"), BadFile, path + ": header: length 1099511627776 is absurd");
  CHECK_THROWS(open_bad(le64(~0ull) + "{}"), BadFile, "is absurd");
  CHECK_THROWS(open_bad(st_bytes("{\"w\xff\":1}", "")), BadFile, path + ": header: invalid JSON at byte 3: invalid UTF-8");
  CHECK_THROWS(open_bad(st_bytes("{\"w\":", "")), BadFile, path + ": header: invalid JSON");
  CHECK_THROWS(open_bad(st_bytes("", "")), BadFile, path + ": header: invalid JSON at byte 0");
  CHECK_THROWS(open_bad(st_bytes("[1,2]", "")), BadFile, path + ": header: not a JSON object");
  CHECK_THROWS(open_bad(st_bytes("{\"__metadata__\":{\"a\":1}}", "")), BadFile, "header: __metadata__ value of 'a'");
  CHECK_THROWS(open_bad(st_bytes("{\"__metadata__\":[]}", "")), BadFile, "header: __metadata__ must be");
  CHECK_THROWS(open_bad(st_bytes(hdr("[]"), "")), BadFile, path + ": tensor 'w': entry is not an object");
  CHECK_THROWS(open_bad(st_bytes(hdr("{\"shape\":[4],\"data_offsets\":[0,16]}"), data16)), BadFile,
               path + ": tensor 'w': missing 'dtype'");
  CHECK_THROWS(open_bad(st_bytes(hdr("{\"dtype\":4,\"shape\":[4],\"data_offsets\":[0,16]}"), data16)), BadFile,
               "tensor 'w': 'dtype' must be a string");
  CHECK_THROWS(open_bad(st_bytes(hdr("{\"dtype\":\"F4X\",\"shape\":[4],\"data_offsets\":[0,16]}"), data16)),
               BadFile, "tensor 'w': unknown dtype 'F4X'");
  CHECK_THROWS(open_bad(st_bytes(hdr("{\"dtype\":\"F32\",\"data_offsets\":[0,16]}"), data16)), BadFile,
               "tensor 'w': missing 'shape'");
  CHECK_THROWS(open_bad(st_bytes(hdr("{\"dtype\":\"F32\",\"shape\":4,\"data_offsets\":[0,16]}"), data16)), BadFile,
               "tensor 'w': 'shape' must be an array");
  CHECK_THROWS(open_bad(st_bytes(hdr("{\"dtype\":\"F32\",\"shape\":[\"4\"],\"data_offsets\":[0,16]}"), data16)),
               BadFile, "tensor 'w': 'shape' must be an array of integers");
  CHECK_THROWS(open_bad(st_bytes(hdr("{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,16]}"), data16)),
               BadFile, "tensor 'w': 'shape' must be an array of integers");
  CHECK_THROWS(open_bad(st_bytes(hdr("{\"dtype\":\"F32\",\"shape\":[-4],\"data_offsets\":[0,16]}"), data16)),
               BadFile, "tensor 'w': negative dimension -4");
  CHECK_THROWS(open_bad(st_bytes(hdr("{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,16]}"),
                                 data16)),
               BadFile, "tensor 'w': shape [4294967296, 4294967296] is too large");
  CHECK_THROWS(open_bad(st_bytes(hdr("{\"dtype\":\"F32\",\"shape\":[99999999999999999999],\"data_offsets\":[0,16]}"),
                                 data16)),
               BadFile, "tensor 'w': 'shape' must be an array of integers");
  CHECK_THROWS(open_bad(st_bytes(hdr("{\"dtype\":\"F32\",\"shape\":[4]}"), data16)), BadFile,
               "tensor 'w': missing 'data_offsets'");
  CHECK_THROWS(open_bad(st_bytes(hdr("{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0]}"), data16)), BadFile,
               "tensor 'w': 'data_offsets' must be two non-negative integers");
  CHECK_THROWS(open_bad(st_bytes(hdr("{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[-1,15]}"), data16)),
               BadFile, "tensor 'w': 'data_offsets' must be two");
  CHECK_THROWS(open_bad(st_bytes(hdr("{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[16,0]}"), data16)), BadFile,
               "tensor 'w': data_offsets [16, 0] are reversed");
  CHECK_THROWS(open_bad(st_bytes(hdr("{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[8,24]}"), data16)), BadFile,
               "tensor 'w': data_offsets end 24 is beyond the data (16 bytes)");
  CHECK_THROWS(open_bad(st_bytes(hdr("{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,16]}"), data16)), BadFile,
               "tensor 'w': data_offsets cover 16 bytes but shape [3] of F32 needs 12");
  CHECK_THROWS(open_bad(st_bytes("{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,12]},"
                                 "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}",
                                 data16)),
               BadFile, path + ": tensor 'b': bytes [8, 12) overlap tensor 'a'");
  // Overlap with a tensor that is not the neighbour in begin order.
  CHECK_THROWS(open_bad(st_bytes("{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
                                 "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]},"
                                 "\"c\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}",
                                 data16)),
               BadFile, "overlap tensor 'a'");
  CHECK_THROWS(open_bad(st_bytes("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                                 "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
                                 data16)),
               BadFile, "duplicate key 'a'");
  // A tensor name with a newline keeps the message on one line.
  CHECK_THROWS(open_bad(st_bytes("{\"x\\ny\":[]}", "")), BadFile, "tensor 'x\\x0ay': entry is not an object");
  // Valid: trailing spaces in the header, unknown keys in an entry, adjacent
  // and empty tensors, integer dtypes.
  write_bytes(path, st_bytes("{\"a\":{\"dtype\":\"I8\",\"shape\":[4],\"data_offsets\":[0,4],\"x\":1},"
                             "\"e\":{\"dtype\":\"BOOL\",\"shape\":[0],\"data_offsets\":[2,2]},"
                             "\"b\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[8,16]}}   ",
                             data16));
  SafetensorsFile ok = SafetensorsFile::open(path);
  CHECK(ok.tensors().size() == 3);
  std::vector<float> out(4);
  CHECK_THROWS(ok.to_float(*ok.find("a"), out.data()), Unsupported, "tensor 'a': dtype I8 cannot be converted");
}

TEST(safetensors_truncated_after_open) {
  TempDir dir;
  const std::string path = dir / "t.safetensors";
  std::vector<float> a(64, 1.0f);
  write_safetensors(path, {{"a", DType::F32, {64}, a.data()}});
  SafetensorsFile f = SafetensorsFile::open(path);
  CHECK(::truncate(path.c_str(), 100) == 0);
  std::vector<float> out(64);
  CHECK_THROWS(f.to_float(f.tensors()[0], out.data()), BadFile, "file ended early");
}

TEST(safetensors_writer_errors) {
  TempDir dir;
  std::vector<float> a(4, 1.0f);
  const std::string path = dir / "w.safetensors";
  CHECK_THROWS(write_safetensors(path, {{"a", DType::F32, {4}, a.data()}, {"a", DType::F32, {4}, a.data()}}),
               InvalidArgument, "tensor 'a' is given twice");
  CHECK_THROWS(write_safetensors(path, {{"__metadata__", DType::F32, {4}, a.data()}}), InvalidArgument, "reserved");
  CHECK_THROWS(write_safetensors(path, {{"a", DType::F32, {-4}, a.data()}}), InvalidArgument, "bad shape [-4]");
  CHECK_THROWS(write_safetensors(path, {{"a", DType::F32, {4}, nullptr}}), InvalidArgument, "no data");
  CHECK_THROWS(write_safetensors(path, {{"a\xff", DType::F32, {4}, a.data()}}), InvalidArgument, "not valid UTF-8");
  CHECK(!fs::exists(path));
  // OS failures: Io naming the path; no temporary file left behind.
  const std::string nodir = dir / "missing/x.safetensors";
  CHECK_THROWS(write_safetensors(nodir, {{"a", DType::F32, {4}, a.data()}}), Io, nodir + ": No such file");
  fs::create_directory(dir / "occupied");
  write_bytes(dir / "occupied/keep", "k");
  CHECK_THROWS(write_safetensors(dir / "occupied", {{"a", DType::F32, {4}, a.data()}}), Io, dir / "occupied");
  CHECK(!has_tmp_leftovers(dir.path));
  CHECK(read_bytes(dir / "occupied/keep") == "k");
  // Atomic replacement: the new content replaces the old one.
  write_bytes(path, "old");
  write_safetensors(path, {{"a", DType::F32, {4}, a.data()}});
  CHECK(SafetensorsFile::open(path).tensors().size() == 1);
  CHECK(!has_tmp_leftovers(dir.path));
}

TEST(file_helpers) {
  TempDir dir;
  write_bytes(dir / "f", "hello");
  CHECK(read_file(dir / "f", 5) == "hello");
  CHECK_THROWS(read_file(dir / "f", 4), BadFile, dir / "f" + ": file is 5 bytes");
  CHECK_THROWS(read_file(dir / "none", 4), NotFound, dir / "none");
  make_dirs(dir / "a/b/c/");
  make_dirs(dir / "a/b/c");
  CHECK(fs::is_directory(dir / "a/b/c"));
  CHECK_THROWS(make_dirs(dir / "f/sub"), Io, "f");
  write_file_atomic(dir / "a/x", {{"ab", 2}, {"cd", 2}});
  CHECK(read_bytes(dir / "a/x") == "abcd");
}

// ============================================================== config.json

static const char* kGpt2Config = R"({
  "activation_function": "gelu_new",
  "architectures": ["GPT2LMHeadModel"],
  "attn_pdrop": 0.1,
  "bos_token_id": 50256,
  "embd_pdrop": 0.1,
  "eos_token_id": 50256,
  "initializer_range": 0.02,
  "layer_norm_epsilon": 1e-05,
  "model_type": "gpt2",
  "n_ctx": 1024,
  "n_embd": 768,
  "n_head": 12,
  "n_inner": null,
  "n_layer": 12,
  "n_positions": 1024,
  "resid_pdrop": 0.1,
  "summary_type": "cls_index",
  "task_specific_params": {"text-generation": {"do_sample": true, "max_length": 50}},
  "vocab_size": 50257
})";

TEST(config_gpt2) {
  ModelConfig c = parse_config_json(kGpt2Config, "gpt2/config.json");
  CHECK(c.arch == Arch::GPT2);
  CHECK(c.vocab_size == 50257 && c.max_pos == 1024 && c.d_model == 768 && c.n_layer == 12);
  CHECK(c.n_head == 12 && c.n_kv_head == 12 && c.head_dim == 64 && c.d_ff == 3072);
  CHECK(c.norm_eps == 1e-5 && c.qkv_bias && c.o_bias && c.tie_embeddings);
  CHECK(c.bos_token_id == 50256 && c.eos_token_id == 50256);
  // Minimal config: defaults.
  ModelConfig m = parse_config_json(
      R"({"model_type":"gpt2","vocab_size":100,"n_positions":16,"n_embd":32,"n_layer":1,"n_head":4,"n_inner":48})",
      "m.json");
  CHECK(m.d_ff == 48 && m.norm_eps == 1e-5 && m.tie_embeddings && m.bos_token_id == -1 && m.eos_token_id == -1);
  CHECK(std::string(arch_name(Arch::GPT2)) == "gpt2");
}

TEST(config_llama_qwen2) {
  const char* llama = R"({
    "architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": 128256,
    "hidden_size": 2048, "intermediate_size": 8192, "num_hidden_layers": 16, "num_attention_heads": 32,
    "num_key_value_heads": 8, "max_position_embeddings": 131072, "rms_norm_eps": 1e-05,
    "rope_theta": 500000.0, "hidden_act": "silu", "tie_word_embeddings": true, "attention_bias": false,
    "mlp_bias": false, "rope_scaling": null, "bos_token_id": 128000, "eos_token_id": [128001, 128008, 128009],
    "torch_dtype": "bfloat16", "pretraining_tp": 1})";
  ModelConfig c = parse_config_json(llama, "llama/config.json");
  CHECK(c.arch == Arch::Llama && c.vocab_size == 128256 && c.d_model == 2048 && c.d_ff == 8192);
  CHECK(c.n_layer == 16 && c.n_head == 32 && c.n_kv_head == 8 && c.head_dim == 64 && c.max_pos == 131072);
  CHECK(c.norm_eps == 1e-5 && c.rope_theta == 500000.0 && c.tie_embeddings && !c.qkv_bias && !c.o_bias);
  CHECK(c.bos_token_id == 128000 && c.eos_token_id == 128001);

  // Defaults: kv heads = heads, head_dim = hidden/heads, eps 1e-6, theta 1e4, untied, no biases.
  ModelConfig d = parse_config_json(
      R"({"model_type":"llama","vocab_size":50,"hidden_size":64,"intermediate_size":128,"num_hidden_layers":2,
          "num_attention_heads":4,"max_position_embeddings":64,"attention_bias":true,"head_dim":null})",
      "d.json");
  CHECK(d.n_kv_head == 4 && d.head_dim == 16 && d.norm_eps == 1e-6 && d.rope_theta == 10000.0);
  CHECK(!d.tie_embeddings && d.qkv_bias && d.o_bias && d.bos_token_id == -1);
  // Explicit head_dim different from hidden/heads.
  ModelConfig e = parse_config_json(
      R"({"model_type":"llama","vocab_size":50,"hidden_size":64,"intermediate_size":128,"num_hidden_layers":2,
          "num_attention_heads":4,"num_key_value_heads":2,"head_dim":32,"max_position_embeddings":64})",
      "e.json");
  CHECK(e.head_dim == 32 && e.q_dim() == 128 && e.kv_dim() == 64);
  // rope_parameters (newer transformers).
  ModelConfig rp = parse_config_json(
      R"({"model_type":"llama","vocab_size":50,"hidden_size":64,"intermediate_size":128,"num_hidden_layers":2,
          "num_attention_heads":4,"max_position_embeddings":64,
          "rope_parameters":{"rope_type":"default","rope_theta":250000.0}})",
      "rp.json");
  CHECK(rp.rope_theta == 250000.0);

  const char* qwen = R"({
    "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "vocab_size": 151936, "hidden_size": 896,
    "intermediate_size": 4864, "num_hidden_layers": 24, "num_attention_heads": 14, "num_key_value_heads": 2,
    "max_position_embeddings": 32768, "max_window_layers": 21, "rms_norm_eps": 1e-06, "rope_theta": 1000000.0,
    "sliding_window": 32768, "use_sliding_window": false, "tie_word_embeddings": true, "hidden_act": "silu",
    "bos_token_id": 151643, "eos_token_id": 151645, "attention_dropout": 0.0, "use_cache": true})";
  ModelConfig q = parse_config_json(qwen, "qwen/config.json");
  CHECK(q.arch == Arch::Qwen2 && q.n_head == 14 && q.n_kv_head == 2 && q.head_dim == 64);
  CHECK(q.qkv_bias && !q.o_bias && q.tie_embeddings && q.rope_theta == 1e6 && q.norm_eps == 1e-6);
  CHECK(q.eos_token_id == 151645);
  ModelConfig qd = parse_config_json(
      R"({"model_type":"qwen2","vocab_size":50,"hidden_size":64,"intermediate_size":128,"num_hidden_layers":2,
          "num_attention_heads":4,"num_key_value_heads":2,"max_position_embeddings":64})",
      "qd.json");
  CHECK(!qd.tie_embeddings && qd.norm_eps == 1e-6 && qd.rope_theta == 10000.0 && qd.qkv_bias && !qd.o_bias);
}

TEST(config_errors) {
  const std::string L =
      R"("model_type":"llama","vocab_size":50,"hidden_size":64,"intermediate_size":128,"num_hidden_layers":2,)"
      R"("max_position_embeddings":64,)";
  auto llama = [&](const std::string& extra) { return parse_config_json("{" + L + extra + "}", "c.json"); };
  const std::string G = R"("model_type":"gpt2","vocab_size":100,"n_positions":16,"n_layer":1,)";
  auto gpt2 = [&](const std::string& extra) { return parse_config_json("{" + G + extra + "}", "g.json"); };

  CHECK_THROWS(parse_config_json(R"({"model_type":"llama","vocab_size":5})", "c.json"), InvalidArgument,
               "c.json: missing field 'hidden_size'");
  CHECK_THROWS(gpt2(R"("n_embd":32,"n_head":"4")"), InvalidArgument, "g.json: field 'n_head' must be a positive integer");
  CHECK_THROWS(gpt2(R"("n_embd":32,"n_head":0)"), InvalidArgument, "field 'n_head' must be a positive integer");
  CHECK_THROWS(gpt2(R"("n_embd":32,"n_head":1.5)"), InvalidArgument, "field 'n_head' must be a positive integer");
  CHECK_THROWS(gpt2(R"("n_embd":32,"n_head":null)"), InvalidArgument, "field 'n_head' must be a positive integer");
  CHECK_THROWS(gpt2(R"("n_embd":32,"n_head":4294967296)"), InvalidArgument, "field 'n_head' must be a positive");
  CHECK_THROWS(gpt2(R"("n_embd":30,"n_head":4)"), InvalidArgument, "field 'n_embd' (30) is not divisible by 'n_head' (4)");
  CHECK_THROWS(gpt2(R"("n_embd":32,"n_head":4,"activation_function":"relu")"), Unsupported,
               "g.json: field 'activation_function' is 'relu'");
  CHECK(gpt2(R"("n_embd":32,"n_head":4,"activation_function":"gelu_pytorch_tanh")").d_ff == 128);
  CHECK_THROWS(gpt2(R"("n_embd":32,"n_head":4,"scale_attn_by_inverse_layer_idx":true)"), Unsupported,
               "field 'scale_attn_by_inverse_layer_idx'");
  CHECK_THROWS(gpt2(R"("n_embd":32,"n_head":4,"reorder_and_upcast_attn":true)"), Unsupported,
               "field 'reorder_and_upcast_attn'");
  CHECK(gpt2(R"("n_embd":32,"n_head":4,"reorder_and_upcast_attn":false)").n_head == 4);
  CHECK_THROWS(gpt2(R"("n_embd":32,"n_head":4,"tie_word_embeddings":"yes")"), InvalidArgument,
               "field 'tie_word_embeddings' must be true or false");
  CHECK_THROWS(gpt2(R"("n_embd":32,"n_head":4,"layer_norm_epsilon":-1)"), InvalidArgument,
               "field 'layer_norm_epsilon' must be a positive number");
  CHECK_THROWS(gpt2(R"("n_embd":32,"n_head":4,"eos_token_id":100)"), InvalidArgument,
               "g.json: field 'eos_token_id' (100) is outside the vocabulary (100 tokens)");
  CHECK_THROWS(gpt2(R"("n_embd":32,"n_head":4,"bos_token_id":-3)"), InvalidArgument,
               "field 'bos_token_id' must be a non-negative integer");

  CHECK_THROWS(llama(R"("num_attention_heads":4,"hidden_act":"gelu")"), Unsupported, "c.json: field 'hidden_act' is 'gelu'");
  CHECK_THROWS(llama(R"("num_attention_heads":4,"mlp_bias":true)"), Unsupported, "field 'mlp_bias'");
  CHECK_THROWS(llama(R"("num_attention_heads":4,"rope_scaling":{"type":"linear","factor":2.0})"), Unsupported,
               "field 'rope_scaling'");
  CHECK(llama(R"("num_attention_heads":4,"rope_scaling":{"rope_type":"default"})").n_head == 4);
  CHECK_THROWS(llama(R"("num_attention_heads":4,"rope_scaling":{"rope_type":"llama3","factor":8.0})"), Unsupported,
               "c.json: field 'rope_scaling' is set");
  CHECK_THROWS(llama(R"("num_attention_heads":4,"rope_parameters":{"rope_type":"yarn"})"), Unsupported,
               "field 'rope_type' is 'yarn'");
  CHECK_THROWS(llama(R"("num_attention_heads":6,"num_key_value_heads":4,"head_dim":8)"), InvalidArgument,
               "field 'num_attention_heads' (6) is not a multiple of 'num_key_value_heads' (4)");
  CHECK_THROWS(llama(R"("num_attention_heads":3)"), InvalidArgument,
               "field 'hidden_size' (64) is not divisible by 'num_attention_heads' (3)");
  CHECK_THROWS(llama(R"("num_attention_heads":4,"head_dim":3)"), InvalidArgument, "field 'head_dim' (3) must be even");
  CHECK_THROWS(llama(R"("num_attention_heads":4,"rope_theta":"big")"), InvalidArgument,
               "field 'rope_theta' must be a positive number");
  CHECK_THROWS(llama(R"("num_attention_heads":4,"eos_token_id":[50])"), InvalidArgument, "outside the vocabulary");
  CHECK(llama(R"("num_attention_heads":4,"eos_token_id":[])").eos_token_id == -1);
  CHECK_THROWS(parse_config_json(R"({"model_type":"qwen2","vocab_size":50,"hidden_size":64,"intermediate_size":128,
                   "num_hidden_layers":2,"num_attention_heads":4,"max_position_embeddings":64,"use_sliding_window":true})",
                                 "q.json"),
               Unsupported, "q.json: field 'use_sliding_window'");
  // Sizes whose parameter count would overflow.
  CHECK_THROWS(parse_config_json(R"({"model_type":"llama","vocab_size":2000000000,"hidden_size":65536,
                   "intermediate_size":131072,"num_hidden_layers":2000,"num_attention_heads":64,
                   "max_position_embeddings":64})",
                                 "huge.json"),
               InvalidArgument, "more than the supported 2^40");
  CHECK_THROWS(llama(R"("num_attention_heads":4,"intermediate_size":2000000000)"), BadFile,
               "duplicate key 'intermediate_size'");

  CHECK_THROWS(parse_config_json(R"({"vocab_size":5})", "m.json"), Unsupported,
               "m.json: missing field 'model_type' (supported: gpt2, llama, qwen2)");
  CHECK_THROWS(parse_config_json(R"({"model_type":"mistral"})", "m.json"), Unsupported,
               "m.json: model_type 'mistral' is not supported (supported: gpt2, llama, qwen2)");
  CHECK_THROWS(parse_config_json(R"({"model_type":7})", "m.json"), Unsupported, "field 'model_type'");
  CHECK_THROWS(parse_config_json("[1]", "m.json"), BadFile, "m.json: not a JSON object");
  CHECK_THROWS(parse_config_json("{\"model_type\": \"gpt2\",}", "m.json"), BadFile, "m.json: invalid JSON at byte");

  // validate() directly.
  ModelConfig bad = llama_cfg();
  bad.n_kv_head = 0;
  CHECK_THROWS(bad.validate("x"), InvalidArgument, "x: field 'num_key_value_heads' must be positive");
  bad = llama_cfg();
  bad.n_layer = 100000;
  CHECK_THROWS(bad.validate("x"), InvalidArgument, "x: field 'num_hidden_layers' (100000) is larger than the supported");
  bad = gpt2_cfg();
  bad.head_dim = 3;
  CHECK_THROWS(bad.validate("x"), InvalidArgument, "x: field 'n_embd' (8) must equal n_head * head_dim");
}

TEST(config_to_json_round_trip) {
  for (ModelConfig c : {gpt2_cfg(), llama_cfg(), qwen2_cfg()}) {
    std::string text = config_to_json(c);
    ModelConfig back = parse_config_json(text, "rt.json");
    CHECK(same_config(c, back));
    json::Value v = json::parse(text, "rt.json");
    CHECK(v.get("torch_dtype")->as_string() == "float32");
    CHECK(v.get("model_type")->as_string() == arch_name(c.arch));
  }
  CHECK(config_to_json(gpt2_cfg()).find("\"GPT2LMHeadModel\"") != std::string::npos);
  CHECK(config_to_json(llama_cfg()).find("\"LlamaForCausalLM\"") != std::string::npos);
  CHECK(config_to_json(qwen2_cfg()).find("\"Qwen2ForCausalLM\"") != std::string::npos);
  CHECK(config_to_json(gpt2_cfg()).find("\"n_embd\": 8") != std::string::npos);
  ModelConfig odd = llama_cfg();
  odd.norm_eps = 1.2345678901234567e-7;
  odd.rope_theta = 12345.678;
  odd.qkv_bias = odd.o_bias = true;
  CHECK(same_config(odd, parse_config_json(config_to_json(odd), "o.json")));
  odd.o_bias = false;
  CHECK_THROWS(config_to_json(odd), InvalidArgument, "attention_bias");
}

// ============================================================== checkpoints

static void check_save_load(const ModelConfig& cfg, uint64_t seed) {
  TempDir dir;
  ParamLayout layout(cfg);
  std::vector<float> p = random_params(layout.numel(), seed);
  const std::string ck = dir / "nested/ckpt";
  save_checkpoint(ck, cfg, p.data());
  CHECK(fs::exists(ck + "/config.json") && fs::exists(ck + "/model.safetensors"));
  CHECK(!has_tmp_leftovers(ck));
  Checkpoint back = load_checkpoint(ck);
  CHECK(same_config(cfg, back.config));
  CHECK(same_bits(p, back.params));
  // Saving again overwrites in place.
  save_checkpoint(ck, back.config, back.params.data());
  CHECK(same_bits(p, load_checkpoint(ck).params));
  // The same file through load_flat_tensors.
  CHECK(same_bits(p, load_flat_tensors(ck + "/model.safetensors", cfg)));
  SafetensorsFile f = SafetensorsFile::open(ck + "/model.safetensors");
  CHECK(f.metadata().size() == 1 && f.metadata()[0].first == "format" && f.metadata()[0].second == "pt");
  CHECK((f.find("lm_head.weight") != nullptr) == !cfg.tie_embeddings);
  for (const SafeTensorInfo& t : f.tensors()) CHECK(t.dtype == DType::F32);
}

TEST(checkpoint_round_trips) {
  check_save_load(gpt2_cfg(), 1);
  ModelConfig g = gpt2_cfg();
  g.tie_embeddings = false;
  check_save_load(g, 2);
  check_save_load(llama_cfg(), 3);
  ModelConfig lb = llama_cfg();
  lb.qkv_bias = lb.o_bias = true;
  lb.tie_embeddings = true;
  check_save_load(lb, 4);
  check_save_load(qwen2_cfg(), 5);
  ModelConfig qu = qwen2_cfg();
  qu.tie_embeddings = false;
  check_save_load(qu, 6);
}

TEST(checkpoint_gpt2_layout) {
  TempDir dir;
  const ModelConfig cfg = gpt2_cfg();
  ParamLayout L(cfg);
  std::vector<float> p = random_params(L.numel(), 7);
  save_checkpoint(dir.path, cfg, p.data());
  SafetensorsFile f = SafetensorsFile::open(dir / "model.safetensors");
  CHECK(f.find("transformer.wte.weight") && !f.find("lm_head.weight") && !f.find("wte.weight"));
  const int C = cfg.d_model, F = cfg.d_ff;
  // c_attn is stored [C, 3C]: element [r][c] is qkv_w[c][r].
  const SafeTensorInfo* ca = f.find("transformer.h.1.attn.c_attn.weight");
  CHECK(ca && ca->shape == std::vector<int64_t>({C, 3 * C}));
  std::vector<float> w(ca->numel);
  f.to_float(*ca, w.data());
  const float* qkv = p.data() + L.layers[1].qkv_w;
  bool ok = true;
  for (int r = 0; r < C; r++)
    for (int c = 0; c < 3 * C; c++) ok = ok && w[r * 3 * C + c] == qkv[c * C + r];
  CHECK(ok);
  const SafeTensorInfo* fc = f.find("transformer.h.0.mlp.c_fc.weight");
  CHECK(fc && fc->shape == std::vector<int64_t>({C, F}));
  const SafeTensorInfo* pr = f.find("transformer.h.0.mlp.c_proj.weight");
  CHECK(pr && pr->shape == std::vector<int64_t>({F, C}));

  // Hand-written file without the "transformer." prefix, with the old mask
  // buffers and some tensors stored as F16/BF16/F64.
  std::vector<std::vector<float>> keep;
  std::vector<std::vector<uint16_t>> keep16;
  std::vector<std::vector<double>> keep64;
  std::vector<SafeTensorView> views;
  for (const SafeTensorInfo& t : f.tensors()) {
    std::vector<float> v(t.numel);
    f.to_float(t, v.data());
    std::string name = t.name.substr(std::string("transformer.").size());
    if (name == "ln_f.weight") {  // as F16: exactly representable values
      std::vector<uint16_t> h(t.numel, 0x3c00);  // 1.0
      keep16.push_back(h);
      views.push_back({name, DType::F16, t.shape, keep16.back().data()});
      continue;
    }
    if (name == "ln_f.bias") {  // as BF16
      std::vector<uint16_t> h(t.numel, 0xc000);  // -2.0
      keep16.push_back(h);
      views.push_back({name, DType::BF16, t.shape, keep16.back().data()});
      continue;
    }
    if (name == "wpe.weight") {  // as F64
      keep64.emplace_back(v.begin(), v.end());
      views.push_back({name, DType::F64, t.shape, keep64.back().data()});
      continue;
    }
    keep.push_back(std::move(v));
    views.push_back({name, DType::F32, t.shape, keep.back().data()});
  }
  // (Moving the inner vectors when the outer ones grow keeps their buffers, so
  // the data pointers above stay valid.)
  std::vector<float> mask(1 * 1 * 5 * 5, 1.0f);
  views.push_back({"h.0.attn.bias", DType::F32, {1, 1, 5, 5}, mask.data()});
  views.push_back({"h.1.attn.masked_bias", DType::F32, {}, mask.data()});
  TempDir hand;
  write_bytes(hand / "config.json", config_to_json(cfg));
  write_safetensors(hand / "model.safetensors", views);
  Checkpoint ck = load_checkpoint(hand.path);
  std::vector<float> expect = p;
  for (int i = 0; i < C; i++) {
    expect[L.lnf_w + i] = 1.0f;
    expect[L.lnf_b + i] = -2.0f;
  }
  CHECK(same_bits(expect, ck.params));
}

// Llama checkpoint written by hand: every tensor gets distinct known values,
// then we look for them at the rows the layout promises.
TEST(checkpoint_llama_by_hand) {
  const ModelConfig cfg = llama_cfg();  // H=4, KVH=2, hd=4, C=16, F=24, untied
  const int64_t V = cfg.vocab_size, C = cfg.d_model, F = cfg.d_ff, H = cfg.n_head, KVH = cfg.n_kv_head,
                hd = cfg.head_dim;
  std::vector<std::pair<std::string, std::vector<int64_t>>> spec = {{"model.embed_tokens.weight", {V, C}}};
  for (int l = 0; l < cfg.n_layer; l++) {
    std::string p = "model.layers." + std::to_string(l) + ".";
    spec.push_back({p + "input_layernorm.weight", {C}});
    spec.push_back({p + "self_attn.q_proj.weight", {H * hd, C}});
    spec.push_back({p + "self_attn.k_proj.weight", {KVH * hd, C}});
    spec.push_back({p + "self_attn.v_proj.weight", {KVH * hd, C}});
    spec.push_back({p + "self_attn.o_proj.weight", {C, H * hd}});
    spec.push_back({p + "post_attention_layernorm.weight", {C}});
    spec.push_back({p + "mlp.gate_proj.weight", {F, C}});
    spec.push_back({p + "mlp.up_proj.weight", {F, C}});
    spec.push_back({p + "mlp.down_proj.weight", {C, F}});
    spec.push_back({p + "self_attn.rotary_emb.inv_freq", {hd / 2}});  // ignored
  }
  spec.push_back({"model.norm.weight", {C}});
  spec.push_back({"lm_head.weight", {V, C}});
  // Tensor k holds values k * 10000 + i.
  std::vector<std::vector<float>> data;
  std::vector<SafeTensorView> views;
  for (size_t k = 0; k < spec.size(); k++) {
    int64_t n = 1;
    for (int64_t d : spec[k].second) n *= d;
    std::vector<float> v(n);
    for (int64_t i = 0; i < n; i++) v[i] = static_cast<float>(k * 10000 + i);
    data.push_back(std::move(v));
  }
  for (size_t k = 0; k < spec.size(); k++) views.push_back({spec[k].first, DType::F32, spec[k].second, data[k].data()});
  auto value_of = [&](const std::string& name, int64_t i) {
    for (size_t k = 0; k < spec.size(); k++)
      if (spec[k].first == name) return data[k][i];
    return -1.0f;
  };

  TempDir dir;
  write_bytes(dir / "config.json", config_to_json(cfg));
  write_safetensors(dir / "model.safetensors", views);
  Checkpoint ck = load_checkpoint(dir.path);
  CHECK(!ck.config.tie_embeddings);
  ParamLayout L(ck.config);
  CHECK(ck.params.size() == L.numel());
  const float* P = ck.params.data();
  const LayerOffsets& o = L.layers[1];
  const std::string p1 = "model.layers.1.";
  bool ok = true;
  for (int64_t r = 0; r < KVH * hd; r++)
    for (int64_t c = 0; c < C; c++) {
      ok = ok && P[o.qkv_w + (H * hd + r) * C + c] == value_of(p1 + "self_attn.k_proj.weight", r * C + c);
      ok = ok && P[o.qkv_w + ((H + KVH) * hd + r) * C + c] == value_of(p1 + "self_attn.v_proj.weight", r * C + c);
    }
  for (int64_t i = 0; i < H * hd * C; i++) ok = ok && P[o.qkv_w + i] == value_of(p1 + "self_attn.q_proj.weight", i);
  CHECK(ok);
  ok = true;
  for (int64_t i = 0; i < F * C; i++) {
    ok = ok && P[o.gate_up_w + i] == value_of(p1 + "mlp.gate_proj.weight", i);
    ok = ok && P[o.gate_up_w + F * C + i] == value_of(p1 + "mlp.up_proj.weight", i);
  }
  for (int64_t i = 0; i < C * F; i++) ok = ok && P[o.down_w + i] == value_of(p1 + "mlp.down_proj.weight", i);
  for (int64_t i = 0; i < C * H * hd; i++) ok = ok && P[o.attn_o_w + i] == value_of(p1 + "self_attn.o_proj.weight", i);
  for (int64_t i = 0; i < C; i++) {
    ok = ok && P[o.ln1_w + i] == value_of(p1 + "input_layernorm.weight", i);
    ok = ok && P[o.ln2_w + i] == value_of(p1 + "post_attention_layernorm.weight", i);
    ok = ok && P[L.lnf_w + i] == value_of("model.norm.weight", i);
  }
  for (int64_t i = 0; i < V * C; i++) {
    ok = ok && P[L.wte + i] == value_of("model.embed_tokens.weight", i);
    ok = ok && P[L.lm_head_w + i] == value_of("lm_head.weight", i);
  }
  CHECK(ok);

  // Untied in config.json but no lm_head.weight: loads as tied.
  views.pop_back();
  write_safetensors(dir / "model.safetensors", views);
  Checkpoint tied = load_checkpoint(dir.path);
  CHECK(tied.config.tie_embeddings);
  CHECK(tied.params.size() == L.numel() - static_cast<size_t>(V * C));

  // Error cases on the same folder.
  // Missing tensor.
  std::vector<SafeTensorView> missing;
  for (const auto& v : views)
    if (v.name != "model.layers.1.mlp.up_proj.weight") missing.push_back(v);
  write_safetensors(dir / "model.safetensors", missing);
  CHECK_THROWS(load_checkpoint(dir.path), NotFound,
               dir / "model.safetensors" + ": missing tensor 'model.layers.1.mlp.up_proj.weight'");
  // Extra tensor.
  std::vector<SafeTensorView> extra = views;
  extra.push_back({"model.layers.0.mlp.extra.weight", DType::F32, {C}, data[0].data()});
  write_safetensors(dir / "model.safetensors", extra);
  CHECK_THROWS(load_checkpoint(dir.path), BadFile,
               dir / "model.safetensors" + ": unexpected tensor 'model.layers.0.mlp.extra.weight'");
  // Layer beyond num_hidden_layers.
  extra = views;
  extra.push_back({"model.layers.2.input_layernorm.weight", DType::F32, {C}, data[0].data()});
  write_safetensors(dir / "model.safetensors", extra);
  CHECK_THROWS(load_checkpoint(dir.path), BadFile, "unexpected tensor 'model.layers.2.input_layernorm.weight'");
  // Wrong shape (transposed k_proj).
  std::vector<SafeTensorView> wrong = views;
  for (auto& v : wrong)
    if (v.name == "model.layers.0.self_attn.k_proj.weight") v.shape = {C, KVH * hd};
  write_safetensors(dir / "model.safetensors", wrong);
  CHECK_THROWS(load_checkpoint(dir.path), BadFile,
               "model.safetensors: tensor 'model.layers.0.self_attn.k_proj.weight' has shape [16, 8], expected [8, 16] "
               "from config.json");
  // Integer dtype.
  std::vector<int32_t> ints(C, 1);
  wrong = views;
  for (auto& v : wrong)
    if (v.name == "model.norm.weight") {
      v.dtype = DType::I32;
      v.data = ints.data();
    }
  write_safetensors(dir / "model.safetensors", wrong);
  CHECK_THROWS(load_checkpoint(dir.path), Unsupported, "tensor 'model.norm.weight': dtype I32");
  // Missing config.json, missing weights.
  TempDir empty;
  CHECK_THROWS(load_checkpoint(empty.path), NotFound, empty / "config.json");
  write_bytes(empty / "config.json", config_to_json(cfg));
  CHECK_THROWS(load_checkpoint(empty.path), NotFound, empty / "model.safetensors");
}

TEST(checkpoint_sharded) {
  TempDir dir;
  const ModelConfig cfg = qwen2_cfg();
  ParamLayout L(cfg);
  std::vector<float> p = random_params(L.numel(), 11);
  save_checkpoint(dir.path, cfg, p.data());
  // Split the saved tensors into two shards.
  SafetensorsFile whole = SafetensorsFile::open(dir / "model.safetensors");
  std::vector<std::vector<float>> data;
  for (const SafeTensorInfo& t : whole.tensors()) {
    data.emplace_back(t.numel);
    whole.to_float(t, data.back().data());
  }
  std::vector<SafeTensorView> s1, s2;
  // The index, optionally without one tensor or with the first tensor's shard swapped.
  auto make_index = [&](const std::string& skip, bool swap_first) {
    std::string idx = "{\"metadata\":{\"total_size\":0},\"weight_map\":{";
    bool any = false;
    for (size_t i = 0; i < whole.tensors().size(); i++) {
      const std::string& name = whole.tensors()[i].name;
      if (name == skip) continue;
      bool first = (i % 2 == 0) != (swap_first && i == 0);
      idx += std::string(any ? "," : "") + "\"" + name + "\":\"model-0000" + (first ? "1" : "2") +
             "-of-00002.safetensors\"";
      any = true;
    }
    return idx + "}}";
  };
  for (size_t i = 0; i < whole.tensors().size(); i++) {
    const SafeTensorInfo& t = whole.tensors()[i];
    (i % 2 == 0 ? s1 : s2).push_back({t.name, DType::F32, t.shape, data[i].data()});
  }
  const std::string index = make_index("", false);
  write_safetensors(dir / "model-00001-of-00002.safetensors", s1);
  write_safetensors(dir / "model-00002-of-00002.safetensors", s2);
  write_bytes(dir / "model.safetensors.index.json", index);
  fs::remove(dir / "model.safetensors");
  Checkpoint ck = load_checkpoint(dir.path);
  CHECK(same_bits(p, ck.params));
  CHECK(same_config(cfg, ck.config));

  // Index pointing at the wrong shard for a tensor.
  write_bytes(dir / "model.safetensors.index.json", make_index("", true));
  CHECK_THROWS(load_checkpoint(dir.path), NotFound,
               "model-00002-of-00002.safetensors: missing tensor 'model.embed_tokens.weight' (listed in");
  // Index missing a tensor.
  write_bytes(dir / "model.safetensors.index.json", make_index("model.norm.weight", false));
  CHECK_THROWS(load_checkpoint(dir.path), NotFound, "model.safetensors.index.json: missing tensor 'model.norm.weight'");
  // Shard names that leave the folder.
  for (const char* evil : {"../model-00001-of-00002.safetensors", "sub/x.safetensors", "..", "/etc/passwd", ""}) {
    std::string e = "{\"weight_map\":{\"model.norm.weight\":\"" + std::string(evil) + "\"}}";
    write_bytes(dir / "model.safetensors.index.json", e);
    CHECK_THROWS(load_checkpoint(dir.path), BadFile, "must be a plain file name inside the checkpoint folder");
  }
  write_bytes(dir / "model.safetensors.index.json", "{\"weight_map\":{\"model.norm.weight\":\"a\\u0000b\"}}");
  CHECK_THROWS(load_checkpoint(dir.path), BadFile, "plain file name");
  write_bytes(dir / "model.safetensors.index.json", "{\"weight_map\":{\"model.norm.weight\":3}}");
  CHECK_THROWS(load_checkpoint(dir.path), BadFile, "weight_map entry 'model.norm.weight' must be a file name");
  write_bytes(dir / "model.safetensors.index.json", "{\"metadata\":{}}");
  CHECK_THROWS(load_checkpoint(dir.path), BadFile, "missing field 'weight_map'");
  write_bytes(dir / "model.safetensors.index.json", "{\"weight_map\":{\"model.norm.weight\":\"gone.safetensors\"}}");
  CHECK_THROWS(load_checkpoint(dir.path), NotFound, "gone.safetensors");

  // Saving over a sharded folder replaces the index with model.safetensors.
  write_bytes(dir / "model.safetensors.index.json", index);
  save_checkpoint(dir.path, cfg, p.data());
  CHECK(!fs::exists(dir / "model.safetensors.index.json"));
  CHECK(same_bits(p, load_checkpoint(dir.path).params));
}

TEST(checkpoint_gpt2_prefix_and_duplicates) {
  TempDir dir;
  const ModelConfig cfg = gpt2_cfg();
  ParamLayout L(cfg);
  std::vector<float> p = random_params(L.numel(), 13);
  save_checkpoint(dir.path, cfg, p.data());
  SafetensorsFile f = SafetensorsFile::open(dir / "model.safetensors");
  std::vector<std::vector<float>> data;
  std::vector<SafeTensorView> views;
  for (const SafeTensorInfo& t : f.tensors()) {
    data.emplace_back(t.numel);
    f.to_float(t, data.back().data());
  }
  for (size_t i = 0; i < f.tensors().size(); i++)
    views.push_back({f.tensors()[i].name, DType::F32, f.tensors()[i].shape, data[i].data()});
  // Both "wte.weight" and "transformer.wte.weight".
  std::vector<SafeTensorView> dup = views;
  dup.push_back({"wte.weight", DType::F32, views[0].shape, data[0].data()});
  write_safetensors(dir / "model.safetensors", dup);
  CHECK_THROWS(load_checkpoint(dir.path), BadFile, "appears more than once");
  // Missing tensor is reported with the file's prefix style.
  std::vector<SafeTensorView> miss(views.begin() + 1, views.end());
  write_safetensors(dir / "model.safetensors", miss);
  CHECK_THROWS(load_checkpoint(dir.path), NotFound, "missing tensor 'transformer.wte.weight'");
  // Tied config with a (redundant) lm_head.weight: ignored.
  std::vector<SafeTensorView> with_head = views;
  with_head.push_back({"lm_head.weight", DType::F32, views[0].shape, data[0].data()});
  write_safetensors(dir / "model.safetensors", with_head);
  Checkpoint ck = load_checkpoint(dir.path);
  CHECK(ck.config.tie_embeddings && same_bits(p, ck.params));
  // load_flat_tensors with an untied config needs lm_head.weight.
  ModelConfig untied = cfg;
  untied.tie_embeddings = false;
  write_safetensors(dir / "model.safetensors", views);
  CHECK_THROWS(load_flat_tensors(dir / "model.safetensors", untied), NotFound, "missing tensor 'lm_head.weight'");
  ModelConfig nobias = cfg;
  nobias.qkv_bias = false;
  CHECK_THROWS(load_flat_tensors(dir / "model.safetensors", nobias), InvalidArgument, "biases");
}

// ============================================================== robustness

// Small deterministic generator for the mutation tests.
struct Lcg {
  uint64_t s;
  uint32_t next() {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    return static_cast<uint32_t>(s >> 33);
  }
  size_t below(size_t n) { return n ? next() % n : 0; }
};

// Random edits: overwrite, delete, insert, truncate; digits and JSON
// punctuation are favoured so headers stay "almost valid".
static std::string mutate(std::string s, Lcg& g, size_t lo = 0) {
  static const char alphabet[] = "0123456789[]{}\",:-.eE \x00\xff\xc3";
  int edits = 1 + static_cast<int>(g.below(4));
  for (int k = 0; k < edits && s.size() > lo; k++) {
    size_t at = lo + g.below(s.size() - lo);
    char c = g.below(2) ? alphabet[g.below(sizeof alphabet - 1)] : static_cast<char>(g.next());
    switch (g.below(4)) {
      case 0: s[at] = c; break;
      case 1: s.erase(at, 1 + g.below(3)); break;
      case 2: s.insert(at, 1, c); break;
      default:
        if (g.below(4) == 0) s.resize(at);
        else s[at] = c;
    }
  }
  return s;
}

TEST(fuzz_safetensors) {
  TempDir dir;
  const std::string path = dir / "f.safetensors";
  std::vector<float> a = {1, 2, 3, 4, 5, 6};
  std::vector<uint16_t> h = {0x3c00, 0x7c00, 0x0001};
  write_safetensors(path, {{"a", DType::F32, {2, 3}, a.data()}, {"h", DType::F16, {3}, h.data()}}, {{"k", "v"}});
  const std::string good = read_bytes(path);
  uint64_t n = 0;
  for (int i = 7; i >= 0; i--) n = (n << 8) | static_cast<unsigned char>(good[i]);
  Lcg g{42};
  int opened = 0, other = 0;
  for (int it = 0; it < 3000; it++) {
    std::string bytes = good;
    if (it % 3 == 0) {
      bytes = mutate(bytes, g);  // anywhere, the length prefix included
    } else {
      // Only inside the header, then fix up the length so the JSON is what is tested.
      std::string header = mutate(good.substr(8, n), g);
      bytes = le64(header.size()) + header + good.substr(8 + n);
    }
    write_bytes(path, bytes);
    try {
      SafetensorsFile f = SafetensorsFile::open(path);
      opened++;
      for (const SafeTensorInfo& t : f.tensors()) {
        std::vector<unsigned char> buf(t.end - t.begin + 4);
        f.read_raw(t, buf.data());
        std::vector<float> out(t.numel + 1);
        try {
          f.to_float(t, out.data());
        } catch (const Error& e) {
          if (e.code() != ErrorCode::Unsupported) other++;
        }
      }
    } catch (const Error& e) {
      std::string msg = e.what();
      if (msg.find(path + ": ") != 0 || msg.find('\n') != std::string::npos) {
        std::fprintf(stderr, "  bad message: %s\n", msg.c_str());
        other++;
      }
    } catch (const std::exception& e) {
      std::fprintf(stderr, "  non-score exception: %s\n", e.what());
      other++;
    }
  }
  CHECK(other == 0);
  CHECK(opened > 0);  // some mutations stay valid (e.g. edits inside the metadata)
}

TEST(fuzz_config_and_checkpoint) {
  TempDir dir;
  const ModelConfig cfg = llama_cfg();
  ParamLayout L(cfg);
  std::vector<float> p = random_params(L.numel(), 17);
  save_checkpoint(dir.path, cfg, p.data());
  const std::string good = read_bytes(dir / "config.json");
  Lcg g{7};
  int bad = 0, loaded = 0;
  for (int it = 0; it < 400; it++) {
    write_bytes(dir / "config.json", mutate(good, g));
    try {
      Checkpoint ck = load_checkpoint(dir.path);
      loaded++;
      if (ck.params.size() != ParamLayout(ck.config).numel()) bad++;
    } catch (const Error& e) {
      std::string msg = e.what();
      if (msg.find(dir.path) != 0 || msg.find('\n') != std::string::npos) {
        std::fprintf(stderr, "  bad message: %s\n", msg.c_str());
        bad++;
      }
    } catch (const std::exception& e) {
      std::fprintf(stderr, "  non-score exception: %s\n", e.what());
      bad++;
    }
  }
  CHECK(bad == 0);
  CHECK(loaded > 0);
}
