// Embedding score-rl in another Node program: load (here: create) a model, score,
// sample, and take one supervised and one RL step against a frozen reference.
// Run: node examples/embed.mjs   (after `npm install`)
import { initModel } from 'score-rl'; // the package by name, as another program imports it

const policy = await initModel({ arch: 'llama', preset: 'tiny' }, { seed: 1 }); // or loadModel('path/to/hf-checkpoint')
const reference = await policy.clone(); // frozen: weights only

// Score: log p(tokens[t+1] | tokens[..t]) for every position.
const scored = await policy.logprobs([[1, 2, 3, 4], [5, 6]]);
console.log('logprobs', scored.rows());

// Sample: 4 completions of one prompt, sharing its prefill.
const prompt = [10, 11, 12];
const gen = await policy.generate([prompt], { n: 4, temperature: 1, maxNewTokens: 8, seed: 1, eosId: null });
for (const s of gen.sequences) console.log('sample', s.sample, s.tokens.join(' '), s.finish);

// Supervised step: next-token loss on the masked targets.
await policy.sftStep({ tokens: [[1, 2, 3, 4]], mask: [[0, 1, 1]] });
await policy.optimizerStep({ lr: 1e-3 });

// RL step: REINFORCE with a per-sample advantage and a KL penalty to the reference,
// only on the completion tokens (targets after the prompt).
const tokens = gen.sequences.map((s) => [...prompt, ...s.tokens]);
const reward = gen.sequences.map((s) => (s.tokens.includes(42) ? 1 : 0));
const mean = reward.reduce((a, r) => a + r, 0) / reward.length;
const onCompletion = (row) => row.slice(1).map((_, t) => (t + 1 >= prompt.length ? 1 : 0));
const stats = await policy.rlStep({
  tokens,
  mask: tokens.map(onCompletion),
  wPg: tokens.map(onCompletion),
  advantages: tokens.map((row, i) => row.slice(1).map(() => reward[i] - mean)),
  wKl: tokens.map((row) => row.slice(1).map(() => 0.01)),
  reference,
  kl: 'k3',
});
const step = await policy.optimizerStep({ lr: 1e-4, maxGradNorm: 1 });
console.log('rl step', { loss: stats.loss, klMean: stats.klMean, entropy: stats.entropy, gradNorm: step.gradNorm });

policy.dispose();
reference.dispose();
