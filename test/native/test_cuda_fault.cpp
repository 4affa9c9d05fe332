// A device fault is sticky: once a kernel has faulted, every later CUDA call in the
// process fails. The backend must turn that into ERR_SCORE_DEVICE on the model's next
// call, refuse every later call with the same code (saying why), and never crash; a
// model created afterwards fails cleanly too. The fault is provoked on purpose (a kernel
// of the backend writing through an invalid pointer), so this test has its own process:
// nothing on the device works after it. Skipped (with the reason) without a GPU.
#include <cstdio>
#include <cstring>
#include <string>

#ifndef SCORE_HAVE_CUDA
int main() {
  std::printf("skipped: this build has no CUDA backend (nvcc not found or SCORE_CUDA=off)\n");
  return 0;
}
#else
#include <cuda_runtime_api.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "cuda/backend.h"
#include "cuda/kernels.h"
#include "model_util.h"
#include "score/backend.h"
#include "score/errors.h"

using namespace score;

namespace {

struct Outcome {
  bool threw = false;
  ErrorCode code = ErrorCode::Internal;
  std::string message;
};

template <typename Fn>
Outcome attempt(Fn&& fn) {
  Outcome o;
  try {
    fn();
  } catch (const Error& e) {
    o.threw = true, o.code = e.code(), o.message = e.what();
  }
  return o;
}

bool report(bool ok, const char* what, const Outcome& o) {
  std::printf("%s: %s: %s%s\n", ok ? "ok  " : "FAIL", what,
              o.threw ? error_code_name(o.code) : "no error", o.threw ? (" (" + o.message + ")").c_str() : "");
  return ok;
}

}  // namespace

int main() {
  const ModelConfig cfg = score_test::tiny_config(Arch::GPT2);
  char err[512] = {0};
  std::unique_ptr<Backend> model(score_cuda_create_backend(&cfg, true, err, sizeof err));
  if (!model) {
    std::printf("skipped: needs a CUDA device (%s)\n", err);
    return 0;
  }
  ParamLayout layout(cfg);
  std::vector<float> params(layout.numel());
  score_test::randomize(params, layout, 5);
  model->set_params(params.data());
  const int B = 2, T = 8;
  std::vector<int32_t> tokens(B * T), lengths(B, T);
  for (int i = 0; i < B * T; i++) tokens[i] = i % cfg.vocab_size;
  const TokenBatch batch{tokens.data(), lengths.data(), B, T};
  std::vector<float> lp(B * (T - 1));
  auto call = [&] { model->logprobs(batch, lp.data(), nullptr); };

  const Outcome before = attempt(call);
  bool ok = report(!before.threw, "a call before the fault", before);
  // The fault: the residual kernel writing 64 Ki floats at address 64 (never mapped).
  cuda::add_inplace(reinterpret_cast<float*>(uintptr_t(64)), reinterpret_cast<const float*>(uintptr_t(64)),
                    size_t(1) << 16, nullptr);
  const cudaError_t fault = cudaDeviceSynchronize();
  std::printf("%s: provoked fault: %s\n", fault != cudaSuccess ? "ok  " : "FAIL", cudaGetErrorName(fault));
  ok = ok && fault != cudaSuccess;

  const Outcome first = attempt(call);
  ok = report(first.threw && first.code == ErrorCode::Device, "the next call", first) && ok;
  const Outcome second = attempt(call);
  ok = report(second.threw && second.code == ErrorCode::Device &&
                  second.message.find("refuses further calls") != std::string::npos,
              "a later call is refused", second) && ok;
  const Outcome step = attempt([&] { model->zero_grad(); });
  ok = report(step.threw && step.code == ErrorCode::Device, "another kind of call is refused", step) && ok;

  // A model created now: either refused at creation (nullptr and a message) or failing
  // with a device error on its first call; never a crash.
  char err2[512] = {0};
  std::unique_ptr<Backend> again(score_cuda_create_backend(&cfg, true, err2, sizeof err2));
  if (!again) {
    const bool said = std::strlen(err2) > 0;
    std::printf("%s: a new model is refused: %s\n", said ? "ok  " : "FAIL", err2);
    ok = ok && said;
  } else {
    const Outcome o = attempt([&] {
      again->set_params(params.data());
      again->logprobs(batch, lp.data(), nullptr);
    });
    ok = report(o.threw && o.code == ErrorCode::Device, "a new model's first call", o) && ok;
  }
  model.reset();  // destructors free what they can and never throw
  again.reset();
  std::printf("%s\n", ok ? "1 passed, 0 failed" : "0 passed, 1 failed");
  return ok ? 0 : 1;
}
#endif
