#include <algorithm>

#include "score/backend.h"

namespace score {

bool generation_done(const GenerateRequest& req, const std::vector<int32_t>& out, int prompt_len,
                     int context, FinishReason* why) {
  if (req.eos_id >= 0 && out.back() == req.eos_id) {
    *why = FinishReason::Eos;
    return true;
  }
  for (const auto& s : req.stop_sequences)
    if (!s.empty() && out.size() >= s.size() && std::equal(s.begin(), s.end(), out.end() - s.size())) {
      *why = FinishReason::Stop;
      return true;
    }
  const int n = static_cast<int>(out.size());
  return n >= req.max_new_tokens || prompt_len + n >= context;
}

}  // namespace score
