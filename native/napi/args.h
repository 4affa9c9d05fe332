// Argument parsing on the JS thread: typed-array views (no copies) and plain
// numbers, each failure a TypeError with code ERR_SCORE_INVALID_ARGUMENT that
// names the field.
#pragma once
#include <napi.h>

#include <string>

#include "worker.h"

namespace score_napi {

[[noreturn]] inline void throw_invalid(Napi::Env env, const std::string& msg) {
  Napi::TypeError err = Napi::TypeError::New(env, msg);
  err.Set("code", Napi::String::New(env, "ERR_SCORE_INVALID_ARGUMENT"));
  throw err;
}

inline Napi::Object get_object(Napi::Env env, const Napi::Value& v, const char* what) {
  if (!v.IsObject()) throw_invalid(env, std::string(what) + " must be an object");
  return v.As<Napi::Object>();
}

template <typename T>
struct View {
  T* data = nullptr;
  size_t length = 0;
  Napi::Object holder;  // the typed array, to keep alive while a worker reads it
};

template <typename T, napi_typedarray_type kType>
View<T> get_typed(Napi::Env env, const Napi::Object& obj, const char* field, const char* type_name,
                  bool optional = false) {
  View<T> view;
  if (!obj.Has(field) || obj.Get(field).IsUndefined()) {
    if (optional) return view;
    throw_invalid(env, std::string("missing field '") + field + "'");
  }
  Napi::Value v = obj.Get(field);
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != kType)
    throw_invalid(env, std::string("field '") + field + "' must be a " + type_name);
  Napi::TypedArrayOf<T> arr = v.As<Napi::TypedArrayOf<T>>();
  view.data = arr.Data();
  view.length = arr.ElementLength();
  view.holder = arr;
  return view;
}

inline View<int32_t> get_i32(Napi::Env env, const Napi::Object& o, const char* f, bool opt = false) {
  return get_typed<int32_t, napi_int32_array>(env, o, f, "Int32Array", opt);
}
inline View<float> get_f32(Napi::Env env, const Napi::Object& o, const char* f, bool opt = false) {
  return get_typed<float, napi_float32_array>(env, o, f, "Float32Array", opt);
}

inline double get_number(Napi::Env env, const Napi::Object& obj, const char* field, double dflt,
                         bool required = false) {
  if (!obj.Has(field) || obj.Get(field).IsUndefined()) {
    if (required) throw_invalid(env, std::string("missing field '") + field + "'");
    return dflt;
  }
  Napi::Value v = obj.Get(field);
  if (!v.IsNumber()) throw_invalid(env, std::string("field '") + field + "' must be a number");
  return v.As<Napi::Number>().DoubleValue();
}

inline int get_int(Napi::Env env, const Napi::Object& obj, const char* field, int dflt,
                   bool required = false) {
  double d = get_number(env, obj, field, dflt, required);
  if (d != static_cast<double>(static_cast<int>(d)))
    throw_invalid(env, std::string("field '") + field + "' must be an integer");
  return static_cast<int>(d);
}

inline std::string get_string(Napi::Env env, const Napi::Value& v, const char* what) {
  if (!v.IsString()) throw_invalid(env, std::string(what) + " must be a string");
  return v.As<Napi::String>().Utf8Value();
}

// A Float32Array that owns a heap vector: handed to JS without a copy.
inline Napi::Float32Array float32_array(Napi::Env env, std::vector<float>&& data) {
  auto* owned = new std::vector<float>(std::move(data));
  Napi::ArrayBuffer buf = Napi::ArrayBuffer::New(
      env, owned->data(), owned->size() * sizeof(float),
      [](Napi::Env, void*, std::vector<float>* v) { delete v; }, owned);
  return Napi::Float32Array::New(env, owned->size(), buf, 0);
}

}  // namespace score_napi
