// SCoRe's objective as numbers per attempt: rewards, the progress bonus, RLOO
// advantages, and the policy-gradient / KL weight of each attempt's tokens.
// The native loss is sum_t -w_pg[t] * A[t] * logp[t] + w_kl[t] * KL[t]; everything
// that makes it SCoRe (which turn is trained, how strongly it is held to the
// reference) is decided here.

export type Stage = 'I' | 'II';

export interface ObjectiveConfig {
  /** progress bonus: r2_shaped = r2 + alpha * (r2 - r1) (paper: 10) */
  alpha: number;
  /** KL weight of every trained turn, except the first turn in Stage I (paper: 0.01) */
  beta1: number;
  /** KL weight of the first turn in Stage I (paper: 0.1 math, 0.25 code) */
  beta2: number;
  /** single-turn RL baseline: only the first attempt exists and is trained on r1 */
  singleTurn: boolean;
}

/** How the tokens of one attempt enter the loss. */
export interface TurnWeights {
  /** policy-gradient weight (0: no policy-gradient term) */
  pg: number;
  /** KL weight against the reference */
  kl: number;
}

/** The weight table of the paper (and DESIGN.md):
 * | stage | y1                        | y2                               |
 * | I     | no PG; KL beta2           | reward r2; KL beta1              |
 * | II    | reward r1; KL beta1       | r2 + alpha (r2 - r1); KL beta1   |
 * Single-turn RL trains y1 on r1 with KL beta1 and has no y2. */
export function turnWeights(stage: Stage, c: ObjectiveConfig): { y1: TurnWeights; y2: TurnWeights | null } {
  if (c.singleTurn) return { y1: { pg: 1, kl: c.beta1 }, y2: null };
  if (stage === 'I') return { y1: { pg: 0, kl: c.beta2 }, y2: { pg: 1, kl: c.beta1 } };
  return { y1: { pg: 1, kl: c.beta1 }, y2: { pg: 1, kl: c.beta1 } };
}

/** The reward credited to the second attempt: r2 in Stage I, r2 + alpha (r2 - r1) in Stage II
 * (alpha 10: wrong->right 11, right->right 1, wrong->wrong 0, right->wrong -10). */
export function secondTurnReward(stage: Stage, r1: number, r2: number, alpha: number): number {
  return stage === 'I' ? r2 : r2 + alpha * (r2 - r1);
}

/** REINFORCE with the leave-one-out baseline (RLOO): within each group of k samples of one
 * prompt, A_i = R_i - mean_{j != i} R_j = k/(k-1) (R_i - mean R). Groups are consecutive. */
export function rlooAdvantages(rewards: readonly number[], k: number): number[] {
  if (!(Number.isInteger(k) && k >= 2)) throw new RangeError(`RLOO needs k >= 2 samples per prompt, got ${k}`);
  if (rewards.length % k !== 0) throw new RangeError(`RLOO: ${rewards.length} rewards are not groups of ${k}`);
  const out = new Array<number>(rewards.length);
  for (let g = 0; g < rewards.length; g += k) {
    let sum = 0;
    for (let i = 0; i < k; i++) sum += rewards[g + i]!;
    for (let i = 0; i < k; i++) out[g + i] = rewards[g + i]! - (sum - rewards[g + i]!) / (k - 1);
  }
  return out;
}
