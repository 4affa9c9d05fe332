#include "json.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <locale>
#include <sstream>

#include "score/errors.h"

namespace score::json {

const char* type_name(Type t) {
  switch (t) {
    case Type::Null: return "null";
    case Type::Bool: return "a boolean";
    case Type::Number: return "a number";
    case Type::String: return "a string";
    case Type::Array: return "an array";
    case Type::Object: return "an object";
  }
  return "?";
}

// ---------------------------------------------------------------- UTF-8

// Length of the well-formed UTF-8 sequence starting at s[i] (1..4), or 0 when
// the bytes there are not well-formed (RFC 3629 table: no overlongs, no
// surrogates, nothing above U+10FFFF).
static size_t utf8_seq_len(const unsigned char* s, size_t n, size_t i) {
  unsigned char c = s[i];
  if (c < 0x80) return 1;
  auto cont = [&](size_t k, unsigned char lo = 0x80, unsigned char hi = 0xBF) {
    return i + k < n && s[i + k] >= lo && s[i + k] <= hi;
  };
  if (c >= 0xC2 && c <= 0xDF) return cont(1) ? 2 : 0;
  if (c == 0xE0) return cont(1, 0xA0) && cont(2) ? 3 : 0;
  if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF) return cont(1) && cont(2) ? 3 : 0;
  if (c == 0xED) return cont(1, 0x80, 0x9F) && cont(2) ? 3 : 0;  // excludes surrogates
  if (c == 0xF0) return cont(1, 0x90) && cont(2) && cont(3) ? 4 : 0;
  if (c >= 0xF1 && c <= 0xF3) return cont(1) && cont(2) && cont(3) ? 4 : 0;
  if (c == 0xF4) return cont(1, 0x80, 0x8F) && cont(2) && cont(3) ? 4 : 0;
  return 0;
}

bool valid_utf8(const std::string& str) {
  const unsigned char* s = reinterpret_cast<const unsigned char*>(str.data());
  size_t n = str.size();
  for (size_t i = 0; i < n;) {
    size_t k = utf8_seq_len(s, n, i);
    if (k == 0) return false;
    i += k;
  }
  return true;
}

static void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

// ---------------------------------------------------------------- numbers

// Length of the JSON number at s[i..n) (RFC 8259 grammar), 0 when none.
static size_t number_len(const char* s, size_t n, size_t i) {
  size_t j = i;
  auto digit = [&](size_t k) { return k < n && s[k] >= '0' && s[k] <= '9'; };
  if (j < n && s[j] == '-') j++;
  if (!digit(j)) return 0;
  if (s[j] == '0') {
    j++;
  } else {
    while (digit(j)) j++;
  }
  if (j < n && s[j] == '.') {
    j++;
    if (!digit(j)) return 0;
    while (digit(j)) j++;
  }
  if (j < n && (s[j] == 'e' || s[j] == 'E')) {
    j++;
    if (j < n && (s[j] == '+' || s[j] == '-')) j++;
    if (!digit(j)) return 0;
    while (digit(j)) j++;
  }
  return j - i;
}

// Locale-independent string -> double; false when out of range or malformed.
static bool parse_double(const std::string& text, double* out) {
  std::istringstream in(text);
  in.imbue(std::locale::classic());
  double d = 0;
  in >> d;
  if (in.fail() || !std::isfinite(d)) return false;
  *out = d;
  return true;
}

// Shortest decimal text that reads back as exactly d (d finite).
static std::string format_double(double d) {
  if (d == std::floor(d) && std::fabs(d) < 1e15) {
    // Integral: "10000.0" like Python's json, so readers see a float.
    std::ostringstream o;
    o.imbue(std::locale::classic());
    o << static_cast<long long>(d) << ".0";
    std::string s = o.str();
    if (d == 0 && std::signbit(d)) s = "-0.0";
    return s;
  }
  for (int prec = 1; prec <= 17; prec++) {
    std::ostringstream o;
    o.imbue(std::locale::classic());
    o.precision(prec);
    o << d;
    double back = 0;
    if (parse_double(o.str(), &back) && back == d) return o.str();
  }
  std::ostringstream o;
  o.imbue(std::locale::classic());
  o.precision(17);
  o << d;
  return o.str();
}

// ---------------------------------------------------------------- Value

Value Value::boolean(bool b) {
  Value v;
  v.type_ = Type::Bool;
  v.bool_ = b;
  return v;
}

Value Value::number(double d) {
  SCORE_CHECK(std::isfinite(d), InvalidArgument, "json: cannot write a non-finite number");
  Value v;
  v.type_ = Type::Number;
  v.text_ = format_double(d);
  return v;
}

Value Value::integer(int64_t i) {
  Value v;
  v.type_ = Type::Number;
  v.text_ = std::to_string(i);
  return v;
}

Value Value::string(std::string s) {
  Value v;
  v.type_ = Type::String;
  v.text_ = std::move(s);
  return v;
}

Value Value::array() {
  Value v;
  v.type_ = Type::Array;
  return v;
}

Value Value::object() {
  Value v;
  v.type_ = Type::Object;
  return v;
}

Value Value::number_literal(std::string literal) {
  SCORE_CHECK(!literal.empty() && number_len(literal.data(), literal.size(), 0) == literal.size(),
              InvalidArgument, "json: '" + literal + "' is not a JSON number");
  Value v;
  v.type_ = Type::Number;
  v.text_ = std::move(literal);
  return v;
}

static void type_mismatch(Type have, const char* want) {
  throw Error(ErrorCode::Internal,
              std::string("json: value is ") + type_name(have) + ", not " + want);
}

bool Value::as_bool() const {
  if (type_ != Type::Bool) type_mismatch(type_, "a boolean");
  return bool_;
}

const std::string& Value::as_string() const {
  if (type_ != Type::String) type_mismatch(type_, "a string");
  return text_;
}

const std::string& Value::number_text() const {
  if (type_ != Type::Number) type_mismatch(type_, "a number");
  return text_;
}

bool Value::get_int64(int64_t* out) const {
  if (type_ != Type::Number) return false;
  const std::string& s = text_;
  if (s.find_first_of(".eE") == std::string::npos) {
    // Plain integer literal: accumulate with an overflow check.
    bool neg = s[0] == '-';
    uint64_t mag = 0;
    const uint64_t limit = neg ? (uint64_t(1) << 63) : (uint64_t(1) << 63) - 1;
    for (size_t i = neg ? 1 : 0; i < s.size(); i++) {
      uint64_t d = static_cast<uint64_t>(s[i] - '0');
      if (mag > (limit - d) / 10) return false;
      mag = mag * 10 + d;
    }
    *out = neg ? static_cast<int64_t>(0 - mag) : static_cast<int64_t>(mag);
    return true;
  }
  // "2.0", "1e3": accept integral values within the exact double range.
  double d = 0;
  if (!parse_double(s, &d)) return false;
  if (d != std::floor(d) || std::fabs(d) > 9007199254740992.0) return false;
  *out = static_cast<int64_t>(d);
  return true;
}

bool Value::get_double(double* out) const {
  if (type_ != Type::Number) return false;
  return parse_double(text_, out);
}

const Value& Value::at(size_t i) const {
  if (type_ != Type::Array && type_ != Type::Object) type_mismatch(type_, "an array or object");
  SCORE_CHECK(i < items_.size(), Internal, "json: index out of range");
  return items_[i];
}

const std::string& Value::key(size_t i) const {
  if (type_ != Type::Object) type_mismatch(type_, "an object");
  SCORE_CHECK(i < keys_.size(), Internal, "json: index out of range");
  return keys_[i];
}

const Value* Value::get(const std::string& k) const {
  if (type_ != Type::Object) type_mismatch(type_, "an object");
  for (size_t i = 0; i < keys_.size(); i++)
    if (keys_[i] == k) return &items_[i];
  return nullptr;
}

Value& Value::push(Value v) {
  if (type_ != Type::Array) type_mismatch(type_, "an array");
  items_.push_back(std::move(v));
  return items_.back();
}

Value& Value::set(const std::string& k, Value v) {
  if (type_ != Type::Object) type_mismatch(type_, "an object");
  for (size_t i = 0; i < keys_.size(); i++) {
    if (keys_[i] == k) {
      items_[i] = std::move(v);
      return items_[i];
    }
  }
  keys_.push_back(k);
  items_.push_back(std::move(v));
  return items_.back();
}

Value& Value::append(std::string k, Value v) {
  if (type_ != Type::Object) type_mismatch(type_, "an object");
  keys_.push_back(std::move(k));
  items_.push_back(std::move(v));
  return items_.back();
}

// ---------------------------------------------------------------- parser

namespace {

// Recursive descent over the text; depth is bounded by kMaxDepth so the
// recursion cannot exhaust the stack.
class Parser {
 public:
  Parser(const std::string& text, const std::string& path, size_t max_values)
      : s_(text.data()), n_(text.size()), path_(path), values_left_(max_values) {}

  Value document() {
    skip_ws();
    Value v = value(0);
    skip_ws();
    if (i_ != n_) fail("unexpected data after the document");
    return v;
  }


 private:
  [[noreturn]] void fail(const std::string& why) const {
    throw Error(ErrorCode::BadFile,
                path_ + ": invalid JSON at byte " + std::to_string(i_) + ": " + why);
  }

  void skip_ws() {
    while (i_ < n_ && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\n' || s_[i_] == '\r')) i_++;
  }

  void expect_word(const char* w) {
    size_t len = std::strlen(w);
    if (n_ - i_ < len || std::memcmp(s_ + i_, w, len) != 0) fail("unexpected character");
    i_ += len;
  }

  Value value(int depth) {
    if (i_ >= n_) fail("unexpected end of input");
    if (values_left_ == 0) fail("too many values");
    values_left_--;
    char c = s_[i_];
    switch (c) {
      case '{': return object(depth + 1);
      case '[': return array(depth + 1);
      case '"': return Value::string(string());
      case 't': expect_word("true"); return Value::boolean(true);
      case 'f': expect_word("false"); return Value::boolean(false);
      case 'n': expect_word("null"); return Value::null();
      default: break;
    }
    if (c == '-' || (c >= '0' && c <= '9')) {
      size_t len = number_len(s_, n_, i_);
      if (len == 0) fail("malformed number");
      Value v = Value::number_literal(std::string(s_ + i_, len));
      i_ += len;
      return v;
    }
    fail("unexpected character");
  }

  Value array(int depth) {
    if (depth > kMaxDepth) fail("nesting deeper than " + std::to_string(kMaxDepth));
    i_++;  // '['
    Value arr = Value::array();
    skip_ws();
    if (i_ < n_ && s_[i_] == ']') {
      i_++;
      return arr;
    }
    for (;;) {
      skip_ws();
      arr.push(value(depth));
      skip_ws();
      if (i_ >= n_) fail("unexpected end of input in an array");
      if (s_[i_] == ',') {
        i_++;
        continue;
      }
      if (s_[i_] == ']') {
        i_++;
        return arr;
      }
      fail("expected ',' or ']'");
    }
  }

  Value object(int depth) {
    if (depth > kMaxDepth) fail("nesting deeper than " + std::to_string(kMaxDepth));
    i_++;  // '{'
    Value obj = Value::object();
    std::vector<std::string> keys;
    skip_ws();
    if (i_ < n_ && s_[i_] == '}') {
      i_++;
      return obj;
    }
    for (;;) {
      skip_ws();
      if (i_ >= n_) fail("unexpected end of input in an object");
      if (s_[i_] != '"') fail("expected a string key");
      size_t key_at = i_;
      std::string k = string();
      skip_ws();
      if (i_ >= n_ || s_[i_] != ':') fail("expected ':'");
      i_++;
      skip_ws();
      Value v = value(depth);
      // Duplicate check: linear for small objects, a sort at the end for big ones.
      if (keys.size() < 16) {
        for (const std::string& prev : keys) {
          if (prev == k) {
            i_ = key_at;
            fail("duplicate key " + quote(k));
          }
        }
      }
      keys.push_back(k);
      obj.append(std::move(k), std::move(v));
      skip_ws();
      if (i_ >= n_) fail("unexpected end of input in an object");
      if (s_[i_] == ',') {
        i_++;
        continue;
      }
      if (s_[i_] == '}') {
        i_++;
        break;
      }
      fail("expected ',' or '}'");
    }
    if (keys.size() > 16) {
      std::sort(keys.begin(), keys.end());
      for (size_t j = 1; j < keys.size(); j++)
        if (keys[j] == keys[j - 1]) fail("duplicate key " + quote(keys[j]) + " in the object ending here");
    }
    return obj;
  }

  unsigned hex4() {
    if (n_ - i_ < 4) fail("truncated \\u escape");
    unsigned v = 0;
    for (int k = 0; k < 4; k++) {
      char c = s_[i_ + k];
      unsigned d;
      if (c >= '0' && c <= '9') d = c - '0';
      else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
      else if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
      else fail("bad \\u escape");
      v = v * 16 + d;
    }
    i_ += 4;
    return v;
  }

  std::string string() {
    i_++;  // opening quote
    std::string out;
    const unsigned char* u = reinterpret_cast<const unsigned char*>(s_);
    for (;;) {
      if (i_ >= n_) fail("unterminated string");
      unsigned char c = u[i_];
      if (c == '"') {
        i_++;
        return out;
      }
      if (c < 0x20) fail("control character in a string");
      if (c == '\\') {
        i_++;
        if (i_ >= n_) fail("unterminated string");
        char e = s_[i_++];
        switch (e) {
          case '"': out += '"'; break;
          case '\\': out += '\\'; break;
          case '/': out += '/'; break;
          case 'b': out += '\b'; break;
          case 'f': out += '\f'; break;
          case 'n': out += '\n'; break;
          case 'r': out += '\r'; break;
          case 't': out += '\t'; break;
          case 'u': {
            size_t at = i_ - 2;
            uint32_t cp = hex4();
            if (cp >= 0xD800 && cp <= 0xDBFF) {
              // High surrogate: must be followed by \u low surrogate.
              if (n_ - i_ < 2 || s_[i_] != '\\' || s_[i_ + 1] != 'u') {
                i_ = at;
                fail("lone surrogate in \\u escape");
              }
              i_ += 2;
              uint32_t lo = hex4();
              if (lo < 0xDC00 || lo > 0xDFFF) {
                i_ = at;
                fail("lone surrogate in \\u escape");
              }
              cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
              i_ = at;
              fail("lone surrogate in \\u escape");
            }
            append_utf8(out, cp);
            break;
          }
          default:
            i_ -= 2;
            fail("bad escape");
        }
        continue;
      }
      size_t k = utf8_seq_len(u, n_, i_);
      if (k == 0) fail("invalid UTF-8");
      out.append(s_ + i_, k);
      i_ += k;
    }
  }

  const char* s_;
  size_t n_;
  size_t i_ = 0;
  const std::string& path_;
  size_t values_left_;
};

}  // namespace

Value parse(const std::string& text, const std::string& path, size_t max_values) {
  try {
    return Parser(text, path, max_values).document();
  } catch (const std::bad_alloc&) {
    throw Error(ErrorCode::OutOfMemory, path + ": out of memory while parsing JSON");
  }
}

std::string quote(const std::string& s, size_t max_len) {
  std::string out = "'";
  static const char* hex = "0123456789abcdef";
  for (size_t i = 0; i < s.size(); i++) {
    if (i == max_len) {
      out += "...";
      break;
    }
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x20 || c == 0x7f) {
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 15];
    } else {
      out += static_cast<char>(c);
    }
  }
  out += "'";
  return out;
}

// ---------------------------------------------------------------- writer

void write_string(std::string& out, const std::string& s) {
  SCORE_CHECK(valid_utf8(s), InvalidArgument, "json: string is not valid UTF-8");
  static const char* hex = "0123456789abcdef";
  out += '"';
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          out += "\\u00";
          out += hex[c >> 4];
          out += hex[c & 15];
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  out += '"';
}

static void write_value(std::string& out, const Value& v, bool pretty, int indent) {
  auto newline = [&](int level) {
    if (!pretty) return;
    out += '\n';
    out.append(static_cast<size_t>(level) * 2, ' ');
  };
  switch (v.type()) {
    case Type::Null: out += "null"; return;
    case Type::Bool: out += v.as_bool() ? "true" : "false"; return;
    case Type::Number: out += v.number_text(); return;
    case Type::String: write_string(out, v.as_string()); return;
    case Type::Array:
    case Type::Object: {
      bool obj = v.is_object();
      out += obj ? '{' : '[';
      if (v.size() == 0) {
        out += obj ? '}' : ']';
        return;
      }
      for (size_t i = 0; i < v.size(); i++) {
        if (i) out += ',';
        newline(indent + 1);
        if (obj) {
          write_string(out, v.key(i));
          out += pretty ? ": " : ":";
        }
        write_value(out, v.at(i), pretty, indent + 1);
      }
      newline(indent);
      out += obj ? '}' : ']';
      return;
    }
  }
}

std::string write(const Value& v, bool pretty) {
  std::string out;
  write_value(out, v, pretty, 0);
  if (pretty) out += '\n';
  return out;
}

}  // namespace score::json
