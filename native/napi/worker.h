// Every long native call is queued on a libuv worker thread through PromiseWorker,
// runs on the addon's compute thread (compute_thread.h) and settles a Promise.
// Arguments are parsed into plain C++ values on the JS
// thread before the worker is queued; the worker's `work` function touches no
// V8 state; `done` builds the JS result back on the JS thread.
#pragma once
#include <napi.h>

#include <functional>
#include <new>
#include <string>
#include <vector>

#include "compute_thread.h"
#include "score/errors.h"

namespace score_napi {

// A JS Error carrying `code` (ERR_SCORE_*), as every rejection from the addon does.
inline Napi::Error make_error(Napi::Env env, const std::string& code, const std::string& message) {
  Napi::Error err = Napi::Error::New(env, message);
  err.Set("code", Napi::String::New(env, code));
  return err;
}

class PromiseWorker : public Napi::AsyncWorker {
 public:
  using Work = std::function<void()>;
  using Done = std::function<Napi::Value(Napi::Env)>;

  PromiseWorker(Napi::Env env, Work work, Done done)
      : Napi::AsyncWorker(env, "score-rl"),
        deferred_(Napi::Promise::Deferred::New(env)),
        work_(std::move(work)),
        done_(std::move(done)) {}

  // Keeps a JS object (an input typed array) alive until the worker is done, so
  // its memory can be read on the worker thread without a copy.
  void keep(Napi::Object obj) { kept_.push_back(Napi::Persistent(obj)); }
  // Runs once the promise has settled, on the JS thread (e.g. to clear a busy flag).
  void on_settled(std::function<void()> fn) { settled_ = std::move(fn); }

  Napi::Promise promise() { return deferred_.Promise(); }

 protected:
  void Execute() override {
    try {
      ComputeThread::get().run(work_);  // see compute_thread.h
    } catch (const score::Error& e) {
      code_ = score::error_code_name(e.code());
      SetError(e.what());
    } catch (const std::bad_alloc&) {
      code_ = "ERR_SCORE_OUT_OF_MEMORY";
      SetError("out of memory");
    } catch (const std::exception& e) {
      code_ = "ERR_SCORE_INTERNAL";
      SetError(e.what());
    }
  }
  void OnOK() override {
    Napi::HandleScope scope(Env());
    if (settled_) settled_();
    try {
      deferred_.Resolve(done_(Env()));
    } catch (const Napi::Error& e) {
      deferred_.Reject(e.Value());
    }
  }
  void OnError(const Napi::Error& e) override {
    Napi::HandleScope scope(Env());
    if (settled_) settled_();
    deferred_.Reject(make_error(Env(), code_, e.Message()).Value());
  }

 private:
  Napi::Promise::Deferred deferred_;
  Work work_;
  Done done_;
  std::function<void()> settled_;
  std::vector<Napi::ObjectReference> kept_;
  std::string code_ = "ERR_SCORE_INTERNAL";
};

}  // namespace score_napi
