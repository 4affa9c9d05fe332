// A small JSON DOM: parser and writer for config.json, safetensors headers,
// index files and run metadata. Strict RFC 8259 input (no comments, no NaN,
// no trailing commas), validated UTF-8, duplicate object keys rejected, a
// nesting limit so hostile input cannot exhaust the stack. Numbers keep their
// literal text, so integers up to 2^53 (and int64 generally) stay exact.
//
// Every parse error is score::Error(BadFile, "<path>: invalid JSON at byte N: <why>").
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace score::json {

enum class Type { Null, Bool, Number, String, Array, Object };

const char* type_name(Type t);  // "null", "a boolean", "a number", ...

class Value {
 public:
  Value() = default;  // null

  // Builders.
  static Value null() { return Value(); }
  static Value boolean(bool b);
  static Value number(double d);   // throws InvalidArgument when not finite
  static Value integer(int64_t i);
  static Value string(std::string s);
  static Value array();
  static Value object();
  // A number from its literal; the literal must be valid JSON number syntax
  // (the parser uses this; throws InvalidArgument otherwise).
  static Value number_literal(std::string literal);

  Type type() const { return type_; }
  bool is_null() const { return type_ == Type::Null; }
  bool is_bool() const { return type_ == Type::Bool; }
  bool is_number() const { return type_ == Type::Number; }
  bool is_string() const { return type_ == Type::String; }
  bool is_array() const { return type_ == Type::Array; }
  bool is_object() const { return type_ == Type::Object; }

  // Typed reads. The as_* accessors throw score::Error(Internal) on a type
  // mismatch (check the type first); the get_* ones return false instead.
  bool as_bool() const;
  const std::string& as_string() const;
  const std::string& number_text() const;  // the literal of a number
  // An integer value: a literal without fraction/exponent that fits int64, or
  // one with fraction/exponent whose value is integral and |v| <= 2^53.
  bool get_int64(int64_t* out) const;
  bool get_double(double* out) const;  // false when not a number or out of double range

  // Arrays and objects: size() elements; for objects key(i) is the i-th key in
  // file order and at(i) its value.
  size_t size() const { return items_.size(); }
  const Value& at(size_t i) const;
  const std::string& key(size_t i) const;
  const Value* get(const std::string& key) const;  // objects: nullptr when absent

  // Building: push onto an array; set a key of an object (replaces an existing
  // key in place, otherwise appends, so key order is insertion order).
  Value& push(Value v);
  Value& set(const std::string& key, Value v);
  // Append a member without looking for an existing key (the caller knows the
  // key is new; the parser uses this and checks duplicates itself).
  Value& append(std::string key, Value v);

 private:
  Type type_ = Type::Null;
  bool bool_ = false;
  std::string text_;                // string value, or number literal
  std::vector<Value> items_;        // array elements / object values
  std::vector<std::string> keys_;   // object keys, parallel to items_
};

constexpr int kMaxDepth = 64;

// Parse a whole document (surrounding whitespace allowed, nothing else).
// `path` only names the source in error messages. max_values caps the number
// of values (every number, string, array, ... counts one) so a hostile
// document cannot make the DOM (~90 bytes a value) exhaust memory.
Value parse(const std::string& text, const std::string& path, size_t max_values = size_t(1) << 24);

// Serialise. Compact: no whitespace. Pretty: 2-space indent, one member or
// element per line, "key": value. Throws InvalidArgument for a string that is
// not valid UTF-8 (so everything written can be read back).
std::string write(const Value& v, bool pretty = false);

// True when s is well-formed UTF-8 (no overlongs, surrogates or > U+10FFFF).
bool valid_utf8(const std::string& s);

// s in single quotes for an error message: control characters as \xNN (so a
// message stays on one line) and cut after max_len bytes with "...".
std::string quote(const std::string& s, size_t max_len = 200);

// Append s as a quoted, escaped JSON string (throws InvalidArgument on invalid UTF-8).
void write_string(std::string& out, const std::string& s);

}  // namespace score::json
