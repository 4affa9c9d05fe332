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
                         InstanceMethod<&ModelWrap::rl_step>("rlStep"),
                         InstanceMethod<&ModelWrap::generate>("generate"),
                         InstanceMethod<&ModelWrap::abort>("abort"),
                         InstanceMethod<&ModelWrap::save>("save"),
                         InstanceMethod<&ModelWrap::clone>("clone"),
                         InstanceMethod<&ModelWrap::get_params>("getParams"),
                         InstanceMethod<&ModelWrap::set_params>("setParams"),
                         InstanceMethod<&ModelWrap::get_optimizer_state>("getOptimizerState"),
                         InstanceMethod<&ModelWrap::set_optimizer_state>("setOptimizerState"),
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

// Queues the worker with the busy flag held until it settles; `also` runs then too.
static Napi::Promise run(Napi::Env env, std::shared_ptr<bool> busy, PromiseWorker* w,
                         std::function<void()> also = {}) {
  *busy = true;
  w->on_settled([busy, also] {
    *busy = false;
    if (also) also();
  });
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
  const score::MemoryUse u = model_->memory_use();
  Napi::Object mem = Napi::Object::New(env);
  mem.Set("params", static_cast<double>(u.params));
  mem.Set("grads", static_cast<double>(u.grads));
  mem.Set("optimizer", static_cast<double>(u.optimizer));
  mem.Set("activations", static_cast<double>(u.activations));
  mem.Set("scratch", static_cast<double>(u.scratch));
  o.Set("memory", mem);
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
  const double norm = get_number(env, o, "norm", 0.0, true);  // validated by the Model
  auto stats = std::make_shared<score::LossStats>();
  const score::TokenBatch tb = a.batch();
  const float* wdata = weight.data;
  auto* w = new PromiseWorker(
      env,
      [model, tb, wdata, norm, stats] {
        score::TokenLoss loss;
        loss.weight = wdata;
        loss.norm = norm;
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

Napi::Value ModelWrap::rl_step(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto model = acquire(env);
  Napi::Object o = get_object(env, info[0], "rlStep argument");
  BatchArgs a = parse_batch(env, o);
  const size_t slots = static_cast<size_t>(a.B) * (a.T - 1);
  View<float> arrays[6] = {get_f32(env, o, "mask"),         get_f32(env, o, "wPg", true),
                           get_f32(env, o, "advantages", true), get_f32(env, o, "wKl", true),
                           get_f32(env, o, "refLogp", true), get_f32(env, o, "oldLogp", true)};
  const char* names[6] = {"mask", "wPg", "advantages", "wKl", "refLogp", "oldLogp"};
  for (int i = 0; i < 6; i++)
    if (arrays[i].data && arrays[i].length != slots)
      throw_invalid(env, std::string("field '") + names[i] + "' has " +
                             std::to_string(arrays[i].length) + " values, expected B*(T-1) = " +
                             std::to_string(slots));
  score::TokenLoss loss;
  loss.rl = true;
  loss.weight = arrays[0].data;
  loss.w_pg = arrays[1].data;
  loss.adv = arrays[2].data;
  loss.w_kl = arrays[3].data;
  loss.ref_logp = arrays[4].data;
  loss.old_logp = arrays[5].data;
  loss.norm = get_number(env, o, "norm", 0.0, true);
  loss.clip_eps = get_number(env, o, "clipEps", 0.0);
  std::string kl = o.Has("kl") ? get_string(env, o.Get("kl"), "field 'kl'") : "k1";
  if (kl != "k1" && kl != "k3") throw_invalid(env, "field 'kl' must be 'k1' or 'k3', got '" + kl + "'");
  loss.kl = kl == "k1" ? score::KlEstimator::K1 : score::KlEstimator::K3;
  const score::TokenBatch tb = a.batch();
  auto stats = std::make_shared<score::LossStats>();
  auto* w = new PromiseWorker(
      env, [model, tb, loss, stats] { *stats = model->rl_backward(tb, loss); },
      [stats](Napi::Env env) -> Napi::Value {
        Napi::Object r = Napi::Object::New(env);
        r.Set("loss", stats->loss);
        r.Set("pgLoss", stats->pg_loss);
        r.Set("klLoss", stats->kl_loss);
        r.Set("klMean", stats->kl_mean);
        r.Set("entropy", stats->entropy_mean);
        r.Set("clipFrac", stats->clip_frac);
        r.Set("tokens", static_cast<double>(stats->tokens));
        r.Set("weightSum", stats->weight_sum);
        return r;
      });
  w->keep(a.tokens.holder);
  w->keep(a.lengths.holder);
  for (auto& v : arrays)
    if (v.data) w->keep(v.holder);
  return run(env, busy_, w);
}

// Ragged int rows from a flat Int32Array and an Int32Array of row lengths.
static std::vector<std::vector<int32_t>> ragged(Napi::Env env, const View<int32_t>& flat,
                                                const View<int32_t>& lens, const char* what) {
  std::vector<std::vector<int32_t>> rows;
  size_t off = 0;
  for (size_t i = 0; i < lens.length; i++) {
    const int32_t n = lens.data[i];
    if (n < 0 || off + static_cast<size_t>(n) > flat.length)
      throw_invalid(env, std::string(what) + ": lengths do not match the flat token array");
    rows.emplace_back(flat.data + off, flat.data + off + n);
    off += n;
  }
  if (off != flat.length) throw_invalid(env, std::string(what) + ": lengths do not match the flat token array");
  return rows;
}

Napi::Value ModelWrap::generate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto model = acquire(env);
  Napi::Object o = get_object(env, info[0], "generate argument");
  auto req = std::make_shared<score::GenerateRequest>();
  req->prompts = ragged(env, get_i32(env, o, "prompts"), get_i32(env, o, "promptLengths"), "prompts");
  View<int32_t> stop = get_i32(env, o, "stop", true), stop_len = get_i32(env, o, "stopLengths", true);
  if (stop.data && stop_len.data) req->stop_sequences = ragged(env, stop, stop_len, "stop");
  req->n = get_int(env, o, "n", 1);
  req->max_new_tokens = get_int(env, o, "maxNewTokens", 64);
  req->eos_id = get_int(env, o, "eosId", -1);
  req->temperature = get_number(env, o, "temperature", 1.0);
  req->top_k = get_int(env, o, "topK", 0);
  req->top_p = get_number(env, o, "topP", 1.0);
  const double seed = get_number(env, o, "seed", 0.0);
  if (seed < 0 || seed != static_cast<double>(static_cast<uint64_t>(seed)))
    throw_invalid(env, "field 'seed' must be a non-negative integer");
  req->seed = static_cast<uint64_t>(seed);
  req->memory_budget = static_cast<size_t>(get_number(env, o, "memoryBudget", 0.0));
  cancel_->store(false);
  req->cancel = cancel_.get();
  auto cancel = cancel_;  // keeps the flag alive for the worker
  // Progress: a thread-safe function, called from the worker without blocking it.
  std::shared_ptr<Napi::ThreadSafeFunction> tsfn;
  if (o.Has("onProgress") && o.Get("onProgress").IsFunction()) {
    tsfn = std::make_shared<Napi::ThreadSafeFunction>(Napi::ThreadSafeFunction::New(
        env, o.Get("onProgress").As<Napi::Function>(), "score-rl progress", 0, 1));
    req->progress = [tsfn](int step, int active) {
      auto* data = new std::pair<int, int>(step, active);
      napi_status st = tsfn->NonBlockingCall(data, [](Napi::Env env, Napi::Function fn, std::pair<int, int>* d) {
        fn.Call({Napi::Number::New(env, d->first), Napi::Number::New(env, d->second)});
        delete d;
      });
      if (st != napi_ok) delete data;
    };
  }
  auto out = std::make_shared<score::GenerateResult>();
  auto* w = new PromiseWorker(
      env, [model, req, out, cancel] { *out = model->generate(*req); },
      [out](Napi::Env env) -> Napi::Value {
        const size_t S = out->tokens.size();
        size_t total = 0;
        for (const auto& t : out->tokens) total += t.size();
        Napi::Int32Array tokens = Napi::Int32Array::New(env, total);
        Napi::Int32Array lengths = Napi::Int32Array::New(env, S);
        Napi::Int32Array finish = Napi::Int32Array::New(env, S);
        std::vector<float> logp(total), logp_s(total);
        size_t off = 0;
        for (size_t r = 0; r < S; r++) {
          lengths[r] = static_cast<int32_t>(out->tokens[r].size());
          finish[r] = static_cast<int32_t>(out->finish[r]);
          for (size_t t = 0; t < out->tokens[r].size(); t++, off++) {
            tokens[off] = out->tokens[r][t];
            logp[off] = out->logp[r][t];
            logp_s[off] = out->logp_sampling[r][t];
          }
        }
        Napi::Object r = Napi::Object::New(env);
        r.Set("tokens", tokens);
        r.Set("lengths", lengths);
        r.Set("finish", finish);
        r.Set("logp", float32_array(env, std::move(logp)));
        r.Set("logpSampling", float32_array(env, std::move(logp_s)));
        r.Set("kvCacheBytes", static_cast<double>(out->kv_cache_bytes));
        r.Set("steps", out->steps);
        return r;
      });
  std::function<void()> release;
  if (tsfn) release = [tsfn] { tsfn->Release(); };
  return run(env, busy_, w, release);
}

Napi::Value ModelWrap::abort(const Napi::CallbackInfo& info) {
  cancel_->store(true);
  return info.Env().Undefined();
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

Napi::Value ModelWrap::get_optimizer_state(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto model = acquire(env);
  auto out = std::make_shared<score::Model::OptimizerState>();
  auto* w = new PromiseWorker(
      env, [model, out] { *out = model->get_optimizer_state(); },
      [out](Napi::Env env) -> Napi::Value {
        Napi::Object o = Napi::Object::New(env);
        o.Set("m", float32_array(env, std::move(out->m)));
        o.Set("v", float32_array(env, std::move(out->v)));
        o.Set("step", static_cast<double>(out->step));
        return o;
      });
  return run(env, busy_, w);
}

Napi::Value ModelWrap::set_optimizer_state(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto model = acquire(env);
  if (!info[0].IsObject()) throw_invalid(env, "setOptimizerState expects {m, v, step}");
  Napi::Object o = info[0].As<Napi::Object>();
  auto f32 = [&](const char* name) {
    Napi::Value x = o.Get(name);
    if (!x.IsTypedArray() || x.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
      throw_invalid(env, std::string("setOptimizerState: ") + name + " must be a Float32Array");
    Napi::Float32Array a = x.As<Napi::Float32Array>();
    return std::vector<float>(a.Data(), a.Data() + a.ElementLength());
  };
  auto s = std::make_shared<score::Model::OptimizerState>();
  s->m = f32("m");
  s->v = f32("v");
  Napi::Value step = o.Get("step");
  if (!step.IsNumber() || !(step.As<Napi::Number>().DoubleValue() >= 0))
    throw_invalid(env, "setOptimizerState: step must be a number >= 0");
  s->step = static_cast<int64_t>(step.As<Napi::Number>().DoubleValue());
  auto* w = new PromiseWorker(
      env, [model, s] { model->set_optimizer_state(*s); },
      [](Napi::Env env) -> Napi::Value { return env.Undefined(); });
  return run(env, busy_, w);
}

Napi::Value ModelWrap::dispose(const Napi::CallbackInfo& info) {
  // A call in flight holds its own reference; the memory goes when it ends.
  model_.reset();
  return info.Env().Undefined();
}

}  // namespace score_napi
