#include "score/errors.h"

namespace score {

const char* error_code_name(ErrorCode code) {
  switch (code) {
    case ErrorCode::InvalidArgument: return "ERR_SCORE_INVALID_ARGUMENT";
    case ErrorCode::BadFile: return "ERR_SCORE_BAD_FILE";
    case ErrorCode::NotFound: return "ERR_SCORE_NOT_FOUND";
    case ErrorCode::OutOfMemory: return "ERR_SCORE_OUT_OF_MEMORY";
    case ErrorCode::Unsupported: return "ERR_SCORE_UNSUPPORTED";
    case ErrorCode::Io: return "ERR_SCORE_IO";
    case ErrorCode::Disposed: return "ERR_SCORE_DISPOSED";
    case ErrorCode::Busy: return "ERR_SCORE_BUSY";
    case ErrorCode::Aborted: return "ERR_SCORE_ABORTED";
    case ErrorCode::Device: return "ERR_SCORE_DEVICE";
    case ErrorCode::Numeric: return "ERR_SCORE_NUMERIC";
    case ErrorCode::Internal: return "ERR_SCORE_INTERNAL";
  }
  return "ERR_SCORE_INTERNAL";
}

}  // namespace score
