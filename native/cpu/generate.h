// Batched generation on the CPU: prefill every prompt once, share it with its
// n samples, then decode all active sequences one token per step with the KV
// cache. A finished sequence leaves the batch and costs nothing more.
#pragma once
#include "cpu/transformer.h"
#include "score/backend.h"

namespace score::cpu {

// What generate() keeps between calls: the KV cache and the packed weights. Allocating
// them afresh each call cost more than the prefill (first-touch page faults: 5 us per
// 4 KiB page on this project's VM), so a model's backend keeps one workspace, reuses its
// memory, and releases it when a training batch needs the room.
struct GenerateWorkspace {
  Transformer<float>::KVCache cache;
  Transformer<float>::DecodeWeights packed;
  size_t cache_bytes() const;  // capacity held by the KV cache
  size_t bytes() const;        // capacity held in all
  void release();
};

GenerateResult generate(Transformer<float>& net, const GenerateRequest& req, GenerateWorkspace& ws);

}  // namespace score::cpu
