// Addon entry: the NativeModel class and the two ways to make one.
//   loadModel(dir, {device, cudaLibrary}) -> Promise<NativeModel>
//   initModel(configJson, seed, {device, cudaLibrary}) -> Promise<NativeModel>
//   errorCodes() -> string[]   (every code a rejection can carry)
//   describeCuda({cudaLibrary}) -> Promise<{ok, text}>   (CUDA device 0 in words, or why not)
//   benchGemm({M, N, K, form, reps, warmup}) -> Promise<{ms: number[], maxRelErr}>  (score-rl bench gemm)
#include <napi.h>

#include "args.h"
#include "model_wrap.h"
#include "score/config.h"
#include "cpu/gemm_bench.h"
#include "score/model.h"
#include "worker.h"

namespace score_napi {
namespace {

score::DeviceOptions parse_device(Napi::Env env, const Napi::Value& v) {
  score::DeviceOptions dev;
  if (v.IsUndefined() || v.IsNull()) return dev;
  Napi::Object o = get_object(env, v, "options");
  if (o.Has("device") && !o.Get("device").IsUndefined())
    dev.device = get_string(env, o.Get("device"), "options.device");
  if (o.Has("cudaLibrary") && !o.Get("cudaLibrary").IsUndefined())
    dev.cuda_library = get_string(env, o.Get("cudaLibrary"), "options.cudaLibrary");
  return dev;
}

Napi::Value load_model(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string dir = get_string(env, info[0], "model directory");
  score::DeviceOptions dev = parse_device(env, info[1]);
  auto out = std::make_shared<std::shared_ptr<score::Model>>();
  auto* w = new PromiseWorker(
      env, [dir, dev, out] { *out = score::Model::load(dir, dev); },
      [out](Napi::Env env) -> Napi::Value { return ModelWrap::wrap(env, std::move(*out)); });
  Napi::Promise p = w->promise();
  w->Queue();
  return p;
}

Napi::Value init_model(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string json = get_string(env, info[0], "config JSON");
  if (!info[1].IsNumber()) throw_invalid(env, "seed must be a number");
  const double seed_d = info[1].As<Napi::Number>().DoubleValue();
  if (seed_d < 0 || seed_d > 9007199254740991.0 || seed_d != static_cast<double>(static_cast<uint64_t>(seed_d)))
    throw_invalid(env, "seed must be a non-negative integer");
  const uint64_t seed = static_cast<uint64_t>(seed_d);
  score::DeviceOptions dev = parse_device(env, info[2]);
  auto out = std::make_shared<std::shared_ptr<score::Model>>();
  auto* w = new PromiseWorker(
      env,
      [json, seed, dev, out] {
        score::ModelConfig cfg = score::parse_config_json(json, "config");
        *out = score::Model::init(cfg, seed, dev);
      },
      [out](Napi::Env env) -> Napi::Value { return ModelWrap::wrap(env, std::move(*out)); });
  Napi::Promise p = w->promise();
  w->Queue();
  return p;
}

Napi::Value bench_gemm(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = get_object(env, info[0], "options");
  const int M = get_int(env, o, "M", 0, true), N = get_int(env, o, "N", 0, true), K = get_int(env, o, "K", 0, true);
  const std::string form = o.Has("form") ? get_string(env, o.Get("form"), "options.form") : "nt";
  const int reps = get_int(env, o, "reps", 10), warmup = get_int(env, o, "warmup", 2);
  auto out = std::make_shared<score::cpu::GemmBenchResult>();
  auto* w = new PromiseWorker(
      env, [=] { *out = score::cpu::bench_sgemm(M, N, K, form, reps, warmup); },
      [out](Napi::Env env) -> Napi::Value {
        Napi::Object r = Napi::Object::New(env);
        Napi::Array ms = Napi::Array::New(env, out->ms.size());
        for (size_t i = 0; i < out->ms.size(); i++) ms.Set(static_cast<uint32_t>(i), out->ms[i]);
        r.Set("ms", ms);
        r.Set("maxRelErr", out->max_rel_err);
        return r;
      });
  Napi::Promise p = w->promise();
  w->Queue();
  return p;
}

Napi::Value describe_cuda(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  score::DeviceOptions dev = parse_device(env, info[0]);
  auto text = std::make_shared<std::string>();
  auto ok = std::make_shared<bool>(false);
  auto* w = new PromiseWorker(
      env, [dev, text, ok] { *ok = score::describe_cuda_device(dev, 0, text.get()); },
      [text, ok](Napi::Env env) -> Napi::Value {
        Napi::Object r = Napi::Object::New(env);
        r.Set("ok", *ok);
        r.Set("text", *text);
        return r;
      });
  Napi::Promise p = w->promise();
  w->Queue();
  return p;
}

Napi::Object init(Napi::Env env, Napi::Object exports) {
  auto* data = new AddonData();
  data->model_ctor = Napi::Persistent(ModelWrap::define(env));
  env.SetInstanceData<AddonData>(data);
  exports.Set("NativeModel", data->model_ctor.Value());
  exports.Set("loadModel", Napi::Function::New(env, load_model, "loadModel"));
  exports.Set("initModel", Napi::Function::New(env, init_model, "initModel"));
  exports.Set("describeCuda", Napi::Function::New(env, describe_cuda, "describeCuda"));
  exports.Set("benchGemm", Napi::Function::New(env, bench_gemm, "benchGemm"));
  return exports;
}

}  // namespace
}  // namespace score_napi

static Napi::Object InitAddon(Napi::Env env, Napi::Object exports) {
  return score_napi::init(env, exports);
}
NODE_API_MODULE(score_addon, InitAddon)
