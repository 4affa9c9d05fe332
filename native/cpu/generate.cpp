#include "cpu/generate.h"

#include <omp.h>

#include <algorithm>
#include <string>

#include "cpu/kernels.h"
#include "cpu/sampling.h"
#include "score/errors.h"
#include "score/memory.h"
#include "score/rng.h"

namespace score::cpu {

size_t GenerateWorkspace::cache_bytes() const {
  size_t n = 0;
  for (const auto& k : cache.k) n += k.capacity() * sizeof(float);
  for (const auto& v : cache.v) n += v.capacity() * sizeof(float);
  return n;
}

size_t GenerateWorkspace::bytes() const {
  size_t n = cache_bytes();
  for (const auto& l : packed.layers) n += l.qkv.bytes() + l.attn_o.bytes() + l.up.bytes() + l.down.bytes();
  return n + packed.lm_head.bytes();
}

void GenerateWorkspace::release() {
  cache = {};
  packed = {};
}

GenerateResult generate(Transformer<float>& net, const GenerateRequest& req, GenerateWorkspace& ws) {
  const ModelConfig& cfg = net.config();
  const int P = static_cast<int>(req.prompts.size()), n = req.n, S = P * n;
  const int V = cfg.vocab_size, C = cfg.d_model;
  int longest = 0;
  for (const auto& p : req.prompts) longest = std::max(longest, static_cast<int>(p.size()));
  // Positions end at the model's context: a sequence that reaches it stops with "length".
  const int len = std::min(cfg.max_pos, longest + req.max_new_tokens);

  GenerateResult res;
  res.kv_cache_bytes = Transformer<float>::cache_bytes(cfg, S, len);
  SCORE_CHECK(req.memory_budget == 0 || res.kv_cache_bytes <= req.memory_budget, OutOfMemory,
              "generate: the KV cache for " + std::to_string(S) + " sequences of " +
                  std::to_string(len) + " positions needs " +
                  std::to_string(res.kv_cache_bytes >> 20) + " MiB, over the memory budget of " +
                  std::to_string(req.memory_budget >> 20) + " MiB");
  // Without a budget, the cache must still fit in the memory there is (else the allocation
  // would fail halfway, or the kernel's OOM killer would end the process). What the
  // workspace holds already is reused.
  const size_t held = ws.cache_bytes();
  if (req.memory_budget == 0 && res.kv_cache_bytes > held)
    check_memory(res.kv_cache_bytes - held, "generate: the KV cache for " + std::to_string(S) +
                                                " sequences of " + std::to_string(len) + " positions");
  Transformer<float>::KVCache& cache = ws.cache;
  net.init_cache(cache, S, len);
  // The linear weights packed for few-row products (packed_linear.h), when the CPU runs
  // that kernel and the copy (about the parameters' size) fits in the memory left with
  // 64 MiB to spare; otherwise the products read the parameters as they are, slower.
  // Packed again every call: the weights may have changed since the last.
  const bool use_packed =
      packed_linear_supported() &&
      (!ws.packed.lm_head.empty() ||
       Transformer<float>::decode_weight_bytes(cfg) + (64u << 20) <= available_memory());
  if (use_packed) net.pack_decode_weights(ws.packed);
  const auto* weights = use_packed ? &ws.packed : nullptr;
  res.tokens.assign(S, {});
  res.logp.assign(S, {});
  res.logp_sampling.assign(S, {});
  res.finish.assign(S, FinishReason::Length);

  SamplingParams sp;
  sp.temperature = req.temperature;
  sp.top_k = req.top_k;
  sp.top_p = req.top_p;
  validate_sampling(sp);
  // One generator per sequence: its samples do not depend on the batch around it.
  std::vector<Rng> rngs;
  rngs.reserve(S);
  for (int r = 0; r < S; r++) rngs.emplace_back(req.seed * 0x9e3779b97f4a7c15ull + static_cast<uint64_t>(r));
  std::vector<SampleScratch> scratch(static_cast<size_t>(omp_get_max_threads()));

  std::vector<int32_t> tok, pos, slot;   // (rows) of this step
  std::vector<int> row_seq;              // sequence of each logits row
  std::vector<float> last, logits;       // (rows, C) hidden of the sampled rows, (rows, V)
  std::vector<int> active;

  // Samples one token for every row of `logits` (row i belongs to sequence row_seq[i]).
  auto sample_rows = [&](int rows) {
    std::vector<SampleResult> out(rows);
    // An exception must not leave an OpenMP region (std::terminate): sample_row throws on
    // non-finite logits (a diverged model), so the first error is kept and rethrown here.
    std::vector<std::string> errors(rows);
    std::vector<ErrorCode> codes(rows, ErrorCode::Internal);
#pragma omp parallel for schedule(static)
    for (int i = 0; i < rows; i++) {
      try {
        out[i] = sample_row(logits.data() + static_cast<size_t>(i) * V, V, sp, rngs[row_seq[i]],
                            scratch[omp_get_thread_num()]);
      } catch (const Error& e) {
        errors[i] = e.what();
        codes[i] = e.code();
      } catch (const std::exception& e) {
        errors[i] = e.what();
      }
    }
    for (int i = 0; i < rows; i++)
      if (!errors[i].empty())  // the kind of the first error is kept (Numeric for a diverged model)
        throw Error(codes[i], "generate: sequence " + std::to_string(row_seq[i]) + ": " + errors[i]);
    for (int i = 0; i < rows; i++) {
      const int r = row_seq[i];
      res.tokens[r].push_back(out[i].token);
      res.logp[r].push_back(out[i].logp);
      res.logp_sampling[r].push_back(out[i].logp_sampling);
    }
  };
  auto lm_head = [&](const float* hidden_rows, int rows) {
    logits.resize(static_cast<size_t>(rows) * V);
    if (weights && rows <= kPackedLinearMaxRows) weights->lm_head.forward(logits.data(), hidden_rows, nullptr, rows);
    else matmul_forward<float>(logits.data(), hidden_rows, net.lm_head(), nullptr, rows, C, V);
  };

  // Prefill: all prompt rows at once, each prompt into the slot of its first sample.
  for (int p = 0; p < P; p++)
    for (int t = 0; t < static_cast<int>(req.prompts[p].size()); t++) {
      tok.push_back(req.prompts[p][t]);
      pos.push_back(t);
      slot.push_back(p * n);
    }
  const float* hidden = net.forward_cached(tok.data(), pos.data(), slot.data(),
                                           static_cast<int>(tok.size()), cache, weights);
  // The last prompt row of each prompt gives the first-token distribution of its n samples.
  last.resize(static_cast<size_t>(S) * C);
  row_seq.resize(S);
  size_t row = 0;
  for (int p = 0; p < P; p++) {
    row += req.prompts[p].size();
    for (int j = 0; j < n; j++) {
      std::copy(hidden + (row - 1) * C, hidden + row * C, last.begin() + static_cast<size_t>(p * n + j) * C);
      row_seq[p * n + j] = p * n + j;
      if (j > 0) net.copy_cache_slot(cache, p * n, p * n + j, static_cast<int>(req.prompts[p].size()));
    }
  }
  lm_head(last.data(), S);
  sample_rows(S);

  // Decode: one row per active sequence per step.
  auto finished = [&](int r) {
    return generation_done(req, res.tokens[r], static_cast<int>(req.prompts[r / n].size()), len, &res.finish[r]);
  };
  for (int r = 0; r < S; r++)
    if (!finished(r)) active.push_back(r);
  int step = 1;
  if (req.progress) req.progress(step, static_cast<int>(active.size()));
  while (!active.empty()) {
    SCORE_CHECK(!(req.cancel && req.cancel->load()), Aborted, "generate: aborted");
    const int A = static_cast<int>(active.size());
    tok.resize(A);
    pos.resize(A);
    slot.resize(A);
    row_seq.resize(A);
    for (int i = 0; i < A; i++) {
      const int r = active[i];
      tok[i] = res.tokens[r].back();
      pos[i] = static_cast<int>(req.prompts[r / n].size() + res.tokens[r].size()) - 1;
      slot[i] = r;
      row_seq[i] = r;
    }
    hidden = net.forward_cached(tok.data(), pos.data(), slot.data(), A, cache, weights);
    lm_head(hidden, A);
    sample_rows(A);
    std::vector<int> still;
    for (int r : active)
      if (!finished(r)) still.push_back(r);
    active.swap(still);
    step++;
    if (req.progress) req.progress(step, static_cast<int>(active.size()));
  }
  res.steps = step;
  return res;
}

}  // namespace score::cpu
