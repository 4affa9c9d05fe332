// Batched generation on the CPU: prefill every prompt once, share it with its
// n samples, then decode all active sequences one token per step with the KV
// cache. A finished sequence leaves the batch and costs nothing more.
#pragma once
#include "cpu/transformer.h"
#include "score/backend.h"

namespace score::cpu {

GenerateResult generate(Transformer<float>& net, const GenerateRequest& req);

}  // namespace score::cpu
