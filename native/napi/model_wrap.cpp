#include "model_wrap.h"

#include "args.h"
#include "score/config.h"
#include "worker.h"

namespace score_napi {
namespace {

// A token batch parsed from {tokens: Int32Array (B*T), lengths: Int32Array (B), B, T}.
struct BatchArgs {
  View<int32_t> tokens, lengths;
  int B = 0, T = 0;
  score::TokenBatch batch() const {
    score::TokenBatch b;
    b.tokens = tokens.data;
    b.lengths = lengths.data;
    b.B = B;
    b.T = T;
    return b;
  }
};

BatchArgs parse_batch(Napi::Env env, const Napi::Object& o) {
  BatchArgs a;
  a.B = get_int(env, o, "B", 0, true);
  a.T = get_int(env, o, "T", 0, true);
  if (a.B < 1 || a.T < 1) throw_invalid(env, "B and T must be >= 1");
  a.tokens = get_i32(env, o, "tokens");
  a.lengths = get_i32(env, o, "lengths");
  if (a.tokens.length != static_cast<size_t>(a.B) * a.T)
    throw_invalid(env, "field 'tokens' has " + std::to_string(a.tokens.length) +
                           " values, expected B*T = " + std::to_string(size_t(a.B) * a.T));
  if (a.lengths.length != static_cast<size_t>(a.B))
    throw_invalid(env, "field 'lengths' has " + std::to_string(a.lengths.length) +
                           " values, expected B = " + std::to_string(a.B));
  return a;
}

}  // namespace

Napi::Function ModelWrap::define(Napi::Env env) {
  return DefineClass(env, "NativeModel",
                     {
                         InstanceMethod<&ModelWrap::info>("info"),
                         InstanceMethod<&ModelWrap::logprobs>("logprobs"),
                         InstanceMethod<&ModelWrap::sft_step>("sftStep"),
                         InstanceMethod<&ModelWrap::optimizer_step>("optimizerStep"),
                         InstanceMethod<&ModelWrap::save>("save"),
                         InstanceMethod<&ModelWrap::clone>("clone"),
                         InstanceMethod<&ModelWrap::get_params>("getParams"),
                         InstanceMethod<&ModelWrap::set_params>("setParams"),
                         InstanceMethod<&ModelWrap::dispose>("dispose"),
                     });
}

Napi::Object ModelWrap::wrap(Napi::Env env, std::shared_ptr<score::Model> model) {
  auto* data = env.GetInstanceData<AddonData>();
  auto* holder = new std::shared_ptr<score::Model>(std::move(model));
  Napi::External<std::shared_ptr<score::Model>> ext =
      Napi::External<std::shared_ptr<score::Model>>::New(
          env, holder, [](Napi::Env, std::shared_ptr<score::Model>* p) { delete p; });
  return data->model_ctor.New({ext});
}

ModelWrap::ModelWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ModelWrap>(info) {
  if (info.Length() != 1 || !info[0].IsExternal())
    throw_invalid(info.Env(), "NativeModel cannot be constructed directly; use loadModel or initModel");
  model_ = *info[0].As<Napi::External<std::shared_ptr<score::Model>>>().Data();
}

std::shared_ptr<score::Model> ModelWrap::acquire(Napi::Env env) {
  if (!model_) throw make_error(env, "ERR_SCORE_DISPOSED", "the model was disposed");
  if (*busy_)
    throw make_error(env, "ERR_SCORE_BUSY", "the model is busy with another call (await it first)");
  return model_;
}

// Queues `work` with the busy flag held for its duration.
static Napi::Promise run(Napi::Env env, std::shared_ptr<bool> busy, PromiseWorker* w) {
  *busy = true;
  w->on_settled([busy] { *busy = false; });
  Napi::Promise p = w->promise();
  w->Queue();
  return p;
}

Napi::Value ModelWrap::info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!model_) throw make_error(env, "ERR_SCORE_DISPOSED", "the model was disposed");
  Napi::Object o = Napi::Object::New(env);
  o.Set("config", score::config_to_json(model_->config()));
  o.Set("numParams", static_cast<double>(model_->num_params()));
  o.Set("device", model_->device());
  o.Set("trainable", model_->trainable());
  o.Set("memoryBytes", static_cast<double>(model_->memory_bytes()));
  return o;
}

Napi::Value ModelWrap::logprobs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto model = acquire(env);
  Napi::Object o = get_object(env, info[0], "logprobs argument");
  BatchArgs a = parse_batch(env, o);
  const bool want_entropy = o.Has("entropy") && o.Get("entropy").ToBoolean();
  struct Out {
    std::vector<float> logp, entropy;
  };
  auto out = std::make_shared<Out>();
  const score::TokenBatch tb = a.batch();  // raw pointers only: no JS handles on the worker
  auto* w = new PromiseWorker(
      env,
      [model, tb, out, want_entropy] {
        const size_t n = static_cast<size_t>(tb.B) * (tb.T > 1 ? tb.T - 1 : 0);
        out->logp.assign(n, 0.0f);
        if (want_entropy) out->entropy.assign(n, 0.0f);
        model->logprobs(tb, out->logp.data(), want_entropy ? out->entropy.data() : nullptr);
      },
      [out, want_entropy](Napi::Env env) -> Napi::Value {
        Napi::Object r = Napi::Object::New(env);
        r.Set("logp", float32_array(env, std::move(out->logp)));
        if (want_entropy) r.Set("entropy", float32_array(env, std::move(out->entropy)));
        return r;
      });
  w->keep(a.tokens.holder);
  w->keep(a.lengths.holder);
  return run(env, busy_, w);
}

Napi::Value ModelWrap::sft_step(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto model = acquire(env);
  Napi::Object o = get_object(env, info[0], "sftStep argument");
  BatchArgs a = parse_batch(env, o);
  View<float> weight = get_f32(env, o, "weight");
  if (weight.length != static_cast<size_t>(a.B) * (a.T - 1))
    throw_invalid(env, "field 'weight' has " + std::to_string(weight.length) +
                           " values, expected B*(T-1) = " + std::to_string(size_t(a.B) * (a.T - 1)));
  const double norm = get_number(env, o, "norm", 0.0);  // 0: the weight sum of this batch
  auto stats = std::make_shared<score::LossStats>();
  const score::TokenBatch tb = a.batch();
  const float* wdata = weight.data;
  auto* w = new PromiseWorker(
      env,
      [model, tb, wdata, norm, stats] {
        score::TokenLoss loss;
        loss.weight = wdata;
        if (norm > 0) {
          loss.norm = norm;
        } else {
          // Mean over weighted target slots of this batch.
          double s = 0;
          for (int r = 0; r < tb.B; r++)
            for (int t = 0; t + 1 < tb.lengths[r] && t + 1 < tb.T; t++) s += wdata[r * (tb.T - 1) + t];
          loss.norm = s > 0 ? s : 1.0;
        }
        *stats = model->sft_backward(tb, loss);
      },
      [stats](Napi::Env env) -> Napi::Value {
        Napi::Object r = Napi::Object::New(env);
        r.Set("loss", stats->loss);
        r.Set("tokens", static_cast<double>(stats->tokens));
        r.Set("weightSum", stats->weight_sum);
        return r;
      });
  w->keep(a.tokens.holder);
  w->keep(a.lengths.holder);
  w->keep(weight.holder);
  return run(env, busy_, w);
}

Napi::Value ModelWrap::optimizer_step(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto model = acquire(env);
  Napi::Object o = get_object(env, info[0], "optimizerStep argument");
  score::AdamWConfig opt;
  opt.lr = static_cast<float>(get_number(env, o, "lr", 0, true));
  opt.beta1 = static_cast<float>(get_number(env, o, "beta1", opt.beta1));
  opt.beta2 = static_cast<float>(get_number(env, o, "beta2", opt.beta2));
  opt.eps = static_cast<float>(get_number(env, o, "eps", opt.eps));
  opt.weight_decay = static_cast<float>(get_number(env, o, "weightDecay", opt.weight_decay));
  opt.max_grad_norm = static_cast<float>(get_number(env, o, "maxGradNorm", opt.max_grad_norm));
  auto stats = std::make_shared<score::StepStats>();
  auto* w = new PromiseWorker(
      env, [model, opt, stats] { *stats = model->optimizer_step(opt); },
      [stats](Napi::Env env) -> Napi::Value {
        Napi::Object r = Napi::Object::New(env);
        r.Set("gradNorm", stats->grad_norm);
        r.Set("clipScale", stats->clip_scale);
        r.Set("step", static_cast<double>(stats->step));
        r.Set("skipped", stats->skipped);
        return r;
      });
  return run(env, busy_, w);
}

Napi::Value ModelWrap::save(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto model = acquire(env);
  std::string dir = get_string(env, info[0], "save directory");
  auto* w = new PromiseWorker(
      env, [model, dir] { model->save(dir); },
      [](Napi::Env env) -> Napi::Value { return env.Undefined(); });
  return run(env, busy_, w);
}

Napi::Value ModelWrap::clone(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto model = acquire(env);
  const bool trainable = info.Length() > 0 && info[0].ToBoolean();
  auto out = std::make_shared<std::shared_ptr<score::Model>>();
  auto* w = new PromiseWorker(
      env, [model, trainable, out] { *out = model->clone(trainable); },
      [out](Napi::Env env) -> Napi::Value { return ModelWrap::wrap(env, std::move(*out)); });
  return run(env, busy_, w);
}

Napi::Value ModelWrap::get_params(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto model = acquire(env);
  auto out = std::make_shared<std::vector<float>>();
  auto* w = new PromiseWorker(
      env, [model, out] { *out = model->get_params(); },
      [out](Napi::Env env) -> Napi::Value { return float32_array(env, std::move(*out)); });
  return run(env, busy_, w);
}

Napi::Value ModelWrap::set_params(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto model = acquire(env);
  if (!info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
    throw_invalid(env, "setParams expects a Float32Array");
  Napi::Float32Array arr = info[0].As<Napi::Float32Array>();
  auto values = std::make_shared<std::vector<float>>(arr.Data(), arr.Data() + arr.ElementLength());
  auto* w = new PromiseWorker(
      env, [model, values] { model->set_params(*values); },
      [](Napi::Env env) -> Napi::Value { return env.Undefined(); });
  return run(env, busy_, w);
}

Napi::Value ModelWrap::dispose(const Napi::CallbackInfo& info) {
  // A call in flight holds its own reference; the memory goes when it ends.
  model_.reset();
  return info.Env().Undefined();
}

}  // namespace score_napi
