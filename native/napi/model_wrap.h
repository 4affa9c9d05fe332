// The JS `NativeModel` class: a thin handle on a score::Model. Every method
// that computes returns a Promise (PromiseWorker); one call runs at a time per
// model (the TypeScript layer queues; a second concurrent call here is
// rejected with ERR_SCORE_BUSY). dispose() frees the model as soon as no call
// is in flight.
#pragma once
#include <napi.h>

#include <atomic>
#include <memory>

#include "score/model.h"

namespace score_napi {

struct AddonData {
  Napi::FunctionReference model_ctor;
};

class ModelWrap : public Napi::ObjectWrap<ModelWrap> {
 public:
  static Napi::Function define(Napi::Env env);
  // Wraps a native model in a new JS object (on the JS thread).
  static Napi::Object wrap(Napi::Env env, std::shared_ptr<score::Model> model);

  explicit ModelWrap(const Napi::CallbackInfo& info);

 private:
  Napi::Value info(const Napi::CallbackInfo& info);
  Napi::Value logprobs(const Napi::CallbackInfo& info);
  Napi::Value sft_step(const Napi::CallbackInfo& info);
  Napi::Value optimizer_step(const Napi::CallbackInfo& info);
  Napi::Value rl_step(const Napi::CallbackInfo& info);
  Napi::Value generate(const Napi::CallbackInfo& info);
  Napi::Value abort(const Napi::CallbackInfo& info);
  Napi::Value save(const Napi::CallbackInfo& info);
  Napi::Value clone(const Napi::CallbackInfo& info);
  Napi::Value get_params(const Napi::CallbackInfo& info);
  Napi::Value set_params(const Napi::CallbackInfo& info);
  Napi::Value get_optimizer_state(const Napi::CallbackInfo& info);
  Napi::Value set_optimizer_state(const Napi::CallbackInfo& info);
  Napi::Value dispose(const Napi::CallbackInfo& info);

  // The model for a new call: throws ERR_SCORE_DISPOSED / ERR_SCORE_BUSY.
  std::shared_ptr<score::Model> acquire(Napi::Env env);

  std::shared_ptr<score::Model> model_;
  std::shared_ptr<bool> busy_ = std::make_shared<bool>(false);
  // Set by abort() from the JS thread, polled by a running generate() each step.
  std::shared_ptr<std::atomic<bool>> cancel_ = std::make_shared<std::atomic<bool>>(false);
};

}  // namespace score_napi
