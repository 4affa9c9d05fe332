// Typed errors of the native core. Nothing in native/ calls exit() or abort():
// every failed check throws score::Error, and the addon turns it into a JS
// error whose `code` property is the code below.
#pragma once
#include <stdexcept>
#include <string>

namespace score {

enum class ErrorCode {
  InvalidArgument,  // "ERR_SCORE_INVALID_ARGUMENT": a bad value passed to an API call
  BadFile,          // "ERR_SCORE_BAD_FILE": a checkpoint/config/safetensors file is malformed
  NotFound,         // "ERR_SCORE_NOT_FOUND": a file or tensor that must exist does not
  OutOfMemory,      // "ERR_SCORE_OUT_OF_MEMORY": an allocation was refused or over budget
  Unsupported,      // "ERR_SCORE_UNSUPPORTED": valid input we do not implement (a config knob)
  Io,               // "ERR_SCORE_IO": reading or writing failed at the OS level
  Disposed,         // "ERR_SCORE_DISPOSED": the model was disposed
  Busy,             // "ERR_SCORE_BUSY": the model is in use by another call
  Aborted,          // "ERR_SCORE_ABORTED": cancelled through an AbortSignal
  Device,           // "ERR_SCORE_DEVICE": a backend (CUDA) failure; sticky
  Numeric,          // "ERR_SCORE_NUMERIC": NaN/Inf where finite values are needed (logits to sample from)
  Internal,         // "ERR_SCORE_INTERNAL": a bug
};

const char* error_code_name(ErrorCode code);

class Error : public std::runtime_error {
 public:
  Error(ErrorCode code, const std::string& message) : std::runtime_error(message), code_(code) {}
  ErrorCode code() const { return code_; }

 private:
  ErrorCode code_;
};

// SCORE_CHECK(cond, code, msg): throw score::Error(code, msg) when cond is false.
// msg is any expression convertible to std::string; it is only built on failure.
#define SCORE_CHECK(cond, code, msg)                         \
  do {                                                       \
    if (!(cond)) throw ::score::Error(::score::ErrorCode::code, (msg)); \
  } while (0)

}  // namespace score
