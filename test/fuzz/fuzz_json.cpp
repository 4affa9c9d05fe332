// Fuzz target: the JSON parser (native/core/json.cpp).
// Besides "no crash, only score::Error": a document that parses must write
// (compact and pretty) and read back to the same text.
#include "../../native/core/json.h"
#include "fuzz_common.h"

using namespace score;

namespace {

// Touch every accessor the rest of the core uses on parsed values.
void walk(const json::Value& v, int depth) {
  if (depth > json::kMaxDepth + 1) score_fuzz::fail("parsed value nests deeper than the limit");
  switch (v.type()) {
    case json::Type::Number: {
      int64_t i = 0;
      double d = 0;
      (void)v.get_int64(&i);
      (void)v.get_double(&d);
      break;
    }
    case json::Type::String: (void)json::quote(v.as_string()); break;
    case json::Type::Object:
      for (size_t k = 0; k < v.size(); k++) {
        if (v.get(v.key(k)) != &v.at(k)) score_fuzz::fail("get(key(i)) is not at(i)");
        walk(v.at(k), depth + 1);
      }
      break;
    case json::Type::Array:
      for (size_t k = 0; k < v.size(); k++) walk(v.at(k), depth + 1);
      break;
    default: break;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  const std::string path = "fuzz.json";
  json::Value v;
  try {
    v = json::parse(text, path, 1u << 16);
  } catch (const Error& e) {
    score_fuzz::check_error(e, path);
    return 0;
  }
  walk(v, 0);
  std::string compact, pretty;
  try {
    compact = json::write(v, false);
    pretty = json::write(v, true);
  } catch (const Error& e) {
    score_fuzz::fail(std::string("a parsed document does not write back: ") + e.what());
  }
  for (const std::string* s : {&compact, &pretty}) {
    try {
      json::Value back = json::parse(*s, "written.json", 1u << 16);
      if (json::write(back, false) != compact) score_fuzz::fail("write(parse(write(v))) != write(v)");
    } catch (const Error& e) {
      score_fuzz::fail(std::string("written JSON does not parse: ") + e.what());
    }
  }
  return 0;
}
