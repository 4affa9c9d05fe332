// The per-token loss of TokenLoss (backend.h) for one target token: its value,
// parts and derivative with respect to the token's log-probability. Backends
// weight it by weight[i] / norm; the CPU backend calls this directly, and it is
// the reference for other backends' fused kernels.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstddef>

#include "score/backend.h"

namespace score {

struct TokenLossTerms {
  double pg = 0;       // w_pg * pg_t
  double kl = 0;       // w_kl * KL_t
  double kl_raw = 0;   // KL_t (unweighted, for statistics)
  double dlogp = 0;    // d(pg + kl) / dlogp_t
  bool clipped = false;
};

inline TokenLossTerms token_loss(const TokenLoss& l, size_t i, double logp) {
  TokenLossTerms r;
  if (!l.rl) {
    r.pg = -logp;
    r.dlogp = -1;
    return r;
  }
  const double wpg = l.w_pg ? l.w_pg[i] : 0.0, A = l.adv ? l.adv[i] : 0.0;
  if (wpg != 0 && A != 0) {
    if (l.clip_eps > 0) {
      // PPO: -min(r A, clip(r) A); the gradient flows only through the unclipped term.
      const double ratio = std::exp(logp - l.old_logp[i]);
      const double rc = std::min(std::max(ratio, 1.0 - l.clip_eps), 1.0 + l.clip_eps);
      r.clipped = rc * A < ratio * A;
      r.pg = -wpg * std::min(ratio * A, rc * A);
      if (!r.clipped) r.dlogp += -wpg * A * ratio;
    } else {
      r.pg = -wpg * A * logp;
      r.dlogp += -wpg * A;
    }
  }
  if (l.ref_logp) {
    const double wkl = l.w_kl ? l.w_kl[i] : 0.0;
    const double d = l.ref_logp[i] - logp;  // log(p_ref / p)
    r.kl_raw = l.kl == KlEstimator::K1 ? -d : std::exp(d) - d - 1.0;
    r.kl = wkl * r.kl_raw;
    r.dlogp += wkl * (l.kl == KlEstimator::K1 ? 1.0 : 1.0 - std::exp(d));
  }
  return r;
}

}  // namespace score
