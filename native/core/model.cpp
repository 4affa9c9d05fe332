#include "score/model.h"

#include <cmath>
#include <string>

#include "score/checkpoint.h"
#include "score/errors.h"
#include "score/memory.h"
#include "score/rng.h"

namespace score {

Model::Model(const ModelConfig& cfg, std::unique_ptr<Backend> backend, bool trainable)
    : cfg_(cfg), layout_(cfg), backend_(std::move(backend)), trainable_(trainable) {}

std::unique_ptr<Model> Model::load(const std::string& dir, const DeviceOptions& dev) {
  Checkpoint ck = load_checkpoint(dir);
  auto backend = create_backend(ck.config, true, dev);
  backend->set_params(ck.params.data());
  return std::unique_ptr<Model>(new Model(ck.config, std::move(backend), true));
}

std::unique_ptr<Model> Model::init(const ModelConfig& cfg, uint64_t seed, const DeviceOptions& dev) {
  cfg.validate("config");
  ParamLayout layout(cfg);
  // the initial values, then the backend's copy
  check_memory(2 * layout.numel() * sizeof(float), "a model of " + std::to_string(layout.numel()) + " parameters");
  std::vector<float> p(layout.numel(), 0.0f);
  Rng rng(seed);
  const double resid_std = 0.02 / std::sqrt(2.0 * cfg.n_layer);
  for (const TensorSpec& t : layout.tensors()) {
    float* w = p.data() + t.offset;
    const std::string& n = t.name;
    auto ends_with = [&](const char* s) {
      const std::string suf(s);
      return n.size() >= suf.size() && n.compare(n.size() - suf.size(), suf.size(), suf) == 0;
    };
    if (ends_with("ln1_w") || ends_with("ln2_w") || n == "lnf_w") {
      for (size_t i = 0; i < t.numel; i++) w[i] = 1.0f;
    } else if (t.shape.size() == 2) {
      const bool resid = ends_with("attn_o_w") || ends_with("proj_w") || ends_with("down_w");
      const double std = resid ? resid_std : 0.02;
      for (size_t i = 0; i < t.numel; i++) w[i] = static_cast<float>(rng.normal() * std);
    }  // biases and LayerNorm biases stay 0
  }
  auto backend = create_backend(cfg, true, dev);
  backend->set_params(p.data());
  return std::unique_ptr<Model>(new Model(cfg, std::move(backend), true));
}

std::unique_ptr<Model> Model::clone(bool trainable) const {
  return std::unique_ptr<Model>(new Model(cfg_, backend_->clone(trainable), trainable));
}

void Model::validate(const TokenBatch& b, bool need_targets) const {
  SCORE_CHECK(b.B >= 1, InvalidArgument, "tokens: the batch is empty");
  SCORE_CHECK(b.T >= 1, InvalidArgument, "tokens: sequences are empty");
  SCORE_CHECK(b.T <= cfg_.max_pos, InvalidArgument,
              "tokens: sequence length " + std::to_string(b.T) + " exceeds the model's " +
                  std::to_string(cfg_.max_pos) + " positions");
  for (int r = 0; r < b.B; r++) {
    const int len = b.lengths[r];
    SCORE_CHECK(len >= (need_targets ? 2 : 1) && len <= b.T, InvalidArgument,
                "lengths[" + std::to_string(r) + "] = " + std::to_string(len) + " is outside [" +
                    (need_targets ? "2" : "1") + ", " + std::to_string(b.T) + "]");
    for (int t = 0; t < len; t++) {
      const int32_t id = b.tokens[static_cast<size_t>(r) * b.T + t];
      SCORE_CHECK(id >= 0 && id < cfg_.vocab_size, InvalidArgument,
                  "tokens[" + std::to_string(r) + "][" + std::to_string(t) + "] = " +
                      std::to_string(id) + " is outside the vocabulary [0, " +
                      std::to_string(cfg_.vocab_size) + ")");
    }
  }
}

void Model::logprobs(const TokenBatch& batch, float* logp, float* entropy) {
  validate(batch, false);
  SCORE_CHECK(batch.T >= 2, InvalidArgument, "tokens: need at least 2 tokens per row to score");
  backend_->logprobs(batch, logp, entropy);
}

LossStats Model::sft_backward(const TokenBatch& batch, const TokenLoss& loss) {
  SCORE_CHECK(trainable_, InvalidArgument, "this model is frozen (a reference clone): no training");
  validate(batch, true);
  SCORE_CHECK(loss.weight != nullptr, InvalidArgument, "loss mask is missing");
  SCORE_CHECK(std::isfinite(loss.norm) && loss.norm > 0, InvalidArgument,
              "norm must be a positive number");
  const size_t slots = static_cast<size_t>(batch.B) * (batch.T - 1);
  for (size_t i = 0; i < slots; i++)
    SCORE_CHECK(std::isfinite(loss.weight[i]), InvalidArgument,
                "loss mask[" + std::to_string(i) + "] is not finite");
  return backend_->loss_backward(batch, loss);
}

static void check_finite(const float* a, size_t n, const char* name, bool required) {
  if (!a) {
    SCORE_CHECK(!required, InvalidArgument, std::string(name) + " is missing");
    return;
  }
  for (size_t i = 0; i < n; i++)
    SCORE_CHECK(std::isfinite(a[i]), InvalidArgument,
                std::string(name) + "[" + std::to_string(i) + "] is not finite");
}

LossStats Model::rl_backward(const TokenBatch& batch, const TokenLoss& loss) {
  SCORE_CHECK(trainable_, InvalidArgument, "this model is frozen (a reference clone): no training");
  validate(batch, true);
  SCORE_CHECK(std::isfinite(loss.norm) && loss.norm > 0, InvalidArgument, "norm must be a positive number");
  SCORE_CHECK(loss.clip_eps >= 0 && loss.clip_eps < 1, InvalidArgument, "clipEps must be in [0, 1)");
  const size_t n = static_cast<size_t>(batch.B) * (batch.T - 1);
  check_finite(loss.weight, n, "mask", true);
  check_finite(loss.w_pg, n, "wPg", false);
  check_finite(loss.adv, n, "advantages", loss.w_pg != nullptr);
  check_finite(loss.w_kl, n, "wKl", false);
  check_finite(loss.ref_logp, n, "refLogp", loss.w_kl != nullptr);
  check_finite(loss.old_logp, n, "oldLogp", loss.clip_eps > 0);
  TokenLoss l = loss;
  l.rl = true;
  return backend_->loss_backward(batch, l);
}

GenerateResult Model::generate(const GenerateRequest& req) {
  SCORE_CHECK(!req.prompts.empty(), InvalidArgument, "prompts: no prompts given");
  SCORE_CHECK(req.n >= 1, InvalidArgument, "n must be >= 1, got " + std::to_string(req.n));
  SCORE_CHECK(req.max_new_tokens >= 1, InvalidArgument, "maxNewTokens must be >= 1");
  SCORE_CHECK(req.temperature >= 0 && std::isfinite(req.temperature), InvalidArgument,
              "temperature must be >= 0");
  SCORE_CHECK(req.top_p > 0 && req.top_p <= 1, InvalidArgument, "topP must be in (0, 1]");
  SCORE_CHECK(req.top_k >= 0, InvalidArgument, "topK must be >= 0");
  SCORE_CHECK(req.eos_id >= -1 && req.eos_id < cfg_.vocab_size, InvalidArgument,
              "eosId " + std::to_string(req.eos_id) + " is outside the vocabulary");
  for (size_t p = 0; p < req.prompts.size(); p++) {
    const auto& pr = req.prompts[p];
    SCORE_CHECK(!pr.empty(), InvalidArgument, "prompts[" + std::to_string(p) + "] is empty");
    SCORE_CHECK(static_cast<int>(pr.size()) < cfg_.max_pos, InvalidArgument,
                "prompts[" + std::to_string(p) + "] has " + std::to_string(pr.size()) +
                    " tokens: no room to generate in the model's " + std::to_string(cfg_.max_pos) +
                    " positions");
    for (size_t t = 0; t < pr.size(); t++)
      SCORE_CHECK(pr[t] >= 0 && pr[t] < cfg_.vocab_size, InvalidArgument,
                  "prompts[" + std::to_string(p) + "][" + std::to_string(t) + "] = " +
                      std::to_string(pr[t]) + " is outside the vocabulary");
  }
  for (size_t s = 0; s < req.stop_sequences.size(); s++) {
    SCORE_CHECK(!req.stop_sequences[s].empty(), InvalidArgument,
                "stop[" + std::to_string(s) + "] is empty");
    for (int32_t id : req.stop_sequences[s])
      SCORE_CHECK(id >= 0 && id < cfg_.vocab_size, InvalidArgument,
                  "stop[" + std::to_string(s) + "] has a token outside the vocabulary");
  }
  return backend_->generate(req);
}

StepStats Model::optimizer_step(const AdamWConfig& opt) {
  SCORE_CHECK(trainable_, InvalidArgument, "this model is frozen (a reference clone): no training");
  SCORE_CHECK(opt.lr >= 0 && std::isfinite(opt.lr), InvalidArgument, "lr must be >= 0");
  SCORE_CHECK(opt.beta1 >= 0 && opt.beta1 < 1, InvalidArgument, "beta1 must be in [0, 1)");
  SCORE_CHECK(opt.beta2 >= 0 && opt.beta2 < 1, InvalidArgument, "beta2 must be in [0, 1)");
  SCORE_CHECK(opt.eps > 0, InvalidArgument, "eps must be > 0");
  SCORE_CHECK(opt.weight_decay >= 0, InvalidArgument, "weightDecay must be >= 0");
  return backend_->optimizer_step(opt);
}

std::vector<float> Model::get_params() const {
  std::vector<float> p(layout_.numel());
  backend_->get_params(p.data());
  return p;
}

Model::OptimizerState Model::get_optimizer_state() const {
  OptimizerState s;
  s.m.resize(layout_.numel());
  s.v.resize(layout_.numel());
  s.step = backend_->get_optimizer_state(s.m.data(), s.v.data());
  return s;
}

void Model::set_optimizer_state(const OptimizerState& s) {
  const size_t n = layout_.numel();
  SCORE_CHECK(s.m.size() == n && s.v.size() == n, InvalidArgument,
              "optimizer state: expected " + std::to_string(n) + " values per moment, got " +
                  std::to_string(s.m.size()) + " and " + std::to_string(s.v.size()));
  SCORE_CHECK(s.step >= 0, InvalidArgument, "optimizer state: step must be >= 0");
  backend_->set_optimizer_state(s.m.data(), s.v.data(), s.step);
}

void Model::set_params(const std::vector<float>& params) {
  SCORE_CHECK(params.size() == layout_.numel(), InvalidArgument,
              "params: expected " + std::to_string(layout_.numel()) + " values, got " +
                  std::to_string(params.size()));
  backend_->set_params(params.data());
}

void Model::save(const std::string& dir) const {
  std::vector<float> p = get_params();
  save_checkpoint(dir, cfg_, p.data());
}

}  // namespace score
