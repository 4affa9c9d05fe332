// Drill: NaN / Inf injected into the inputs of a step, into a gradient (finite inputs whose
// gradient overflows), and into a weight. Bad inputs are refused before anything changes; a
// step with a non-finite gradient is skipped with weights and optimizer state untouched, or
// the run stops (by option) with a message naming the step; no checkpoint ever holds a
// non-finite value.
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { resolveConfig, type TrainConfig } from '../../lib/rl/config.js';
import { train, type StepMetrics } from '../../lib/rl/trainer.js';
import { readJsonl } from '../../lib/rl/files.js';
import { saveCheckpoint } from '../../lib/rl/checkpoint.js';
import { loadModel, type Model } from '../../lib/model/model.js';
import { format, records, tinyModel, tinyTask } from '../rl/tiny.js';

const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));
const tmp = () => {
  const d = mkdtempSync(join(tmpdir(), 'score-drill-nan-'));
  dirs.push(d);
  return d;
};
const same = (a: Float32Array, b: Float32Array) => Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.byteLength), Buffer.from(b.buffer, b.byteOffset, b.byteLength)) === 0;
const allFinite = async (dir: string) => {
  const m = await loadModel(dir);
  const ok = (await m.getParams()).every(Number.isFinite);
  m.dispose();
  return ok;
};
const oneDigit = { ...tinyTask, reward: async (c: string) => ({ correct: /^[0-9]$/.test(c), reason: '' }) };

describe('drill: numerical faults in one step', () => {
  const tokens = [[1, 4, 5, 6, 2]];
  const base = { tokens, mask: [[0, 0, 1, 1]], wPg: [[0, 0, 1, 1]], advantages: [[0, 0, 1, 1]], wKl: [[0, 0, 0.1, 0.1]], refLogp: [[0, 0, -1, -1]] };

  it('NaN or Inf in the inputs: refused with a typed error naming the array and index; nothing changes', async () => {
    const m = await tinyModel(1);
    const p0 = await m.getParams();
    await expect(m.rlStep({ ...base, advantages: [[0, 0, NaN, 1]] })).rejects.toMatchObject({ code: 'ERR_SCORE_INVALID_ARGUMENT', message: 'advantages[2] is not finite' });
    await expect(m.rlStep({ ...base, refLogp: [[0, 0, -Infinity, -1]] })).rejects.toMatchObject({ code: 'ERR_SCORE_INVALID_ARGUMENT', message: 'refLogp[2] is not finite' });
    expect((await m.optimizerStep({ lr: 1e-2 })).gradNorm).toBe(0); // no gradient was added
    expect(same(await m.getParams(), p0)).toBe(true);
    m.dispose();
  });

  it('finite inputs whose gradient overflows (weight x advantage = 9e76): the step is skipped, weights and moments unchanged; the next step is normal', async () => {
    const m = await tinyModel(1);
    await m.rlStep(base);
    await m.optimizerStep({ lr: 1e-2 });
    const [p0, s0] = [await m.getParams(), await m.getOptimizerState()];
    await m.rlStep({ ...base, wPg: [[0, 0, 3e38, 3e38]], advantages: [[0, 0, 3e38, 3e38]] });
    const o = await m.optimizerStep({ lr: 1e-2 });
    expect(o.skipped).toBe(true);
    expect(Number.isFinite(o.gradNorm)).toBe(false);
    expect(o.step).toBe(1);
    expect(same(await m.getParams(), p0)).toBe(true);
    const s1 = await m.getOptimizerState();
    expect(same(s1.m, s0.m) && same(s1.v, s0.v) && s1.step === 1).toBe(true);
    await m.rlStep(base);
    const next = await m.optimizerStep({ lr: 1e-2 });
    expect(next.skipped).toBe(false);
    expect(next.step).toBe(2);
    m.dispose();
  });
});

describe('drill: numerical faults in a run', () => {
  /** The real policy, with a gradient fault injected into the RL step of the given steps: the
   * policy-gradient weights and the advantages become 3e38 (finite), so the gradient overflows to Inf/NaN in the
   * native backward (the inputs stay finite and pass validation). */
  function faulty(policy: Model, steps: number[]): Model {
    let call = 0;
    return new Proxy(policy, {
      get(t, k) {
        if (k === 'rlStep')
          return (b: Parameters<Model['rlStep']>[0]) => {
            call++;
            const poisoned = (rows: unknown, v: number) => (rows as number[][]).map((r) => r.map((x) => (x !== 0 ? v : 0)));
            return t.rlStep(steps.includes(call) ? { ...b, wPg: poisoned(b.wPg, 3e38), advantages: poisoned(b.wPg, 3e38) } : b);
          };
        const v = Reflect.get(t, k, t);
        return typeof v === 'function' ? v.bind(t) : v;
      },
    });
  }
  async function run(cfg: Partial<TrainConfig>, out: string, opts: { faultAt?: number[]; poison?: (m: StepMetrics, policy: Model) => Promise<void> } = {}) {
    const policy = await tinyModel(3);
    const reference = await policy.clone();
    const config = resolveConfig({ stage1Steps: 0, stage2Steps: 10, k: 4, promptsPerStep: 4, lr: 1e-3, maxNewTokens: 3, checkpointEvery: 2, maxSkippedSteps: 3, seed: 1, ...cfg });
    const seen: StepMetrics[] = [];
    try {
      const r = await train({
        policy: faulty(policy, opts.faultAt ?? []), reference, task: oneDigit, train: records(), format, config, out,
        onStep: async (m) => {
          seen.push(m);
          await opts.poison?.(m, policy);
        },
      });
      return { r, err: null, seen };
    } catch (e) {
      return { r: null, err: e as { code: string; message: string }, seen };
    } finally {
      policy.dispose();
      reference.dispose();
    }
  }

  it('nonFinite=skip: the poisoned steps are skipped and logged, the run finishes, every checkpoint is finite', async () => {
    const out = tmp();
    const clean = await run({}, tmp());
    const { r, err, seen } = await run({ nonFinite: 'skip' }, out, { faultAt: [3, 4] });
    expect(err).toBeNull();
    expect(seen.map((m) => m.skipped)).toEqual([false, false, true, true, false, false, false, false, false, false]);
    // a skipped step leaves the weights as they were: the steps before it match a clean run
    expect(seen.slice(0, 3).map((m) => m.reward_t1)).toEqual(clean.seen.slice(0, 3).map((m) => m.reward_t1));
    expect(r!.steps).toBe(10);
    expect(readJsonl<StepMetrics>(join(out, 'metrics.jsonl')).map((m) => m.skipped).filter(Boolean).length).toBe(2);
    for (const s of ['step-000008', 'step-000010']) expect(await allFinite(join(out, 'checkpoints', s))).toBe(true);
  });

  it('nonFinite=skip with maxSkippedSteps 2: two in a row stop the run', async () => {
    const { err, seen } = await run({ nonFinite: 'skip', maxSkippedSteps: 2 }, tmp(), { faultAt: [3, 4, 5] });
    expect(err?.code).toBe('ERR_SCORE_NUMERIC');
    expect(err?.message).toMatch(/^step 4: non-finite gradient .*stopping \(2 steps in a row\)\. The last checkpoint is step-000002$/);
    expect(seen.length).toBe(4);
  });

  it('nonFinite=stop: the run stops at the first skipped step, naming it and the last checkpoint', async () => {
    const { err, seen } = await run({ nonFinite: 'stop' }, tmp(), { faultAt: [5] });
    expect(err?.code).toBe('ERR_SCORE_NUMERIC');
    expect(err?.message).toMatch(/^step 5: non-finite gradient .*stopping \(nonFinite is stop\)\. The last checkpoint is step-000004$/);
    expect(seen.length).toBe(5);
  });

  it('a weight turned NaN: sampling stops the run with ERR_SCORE_NUMERIC; no checkpoint after it', async () => {
    const out = tmp();
    const poison = async (m: StepMetrics, policy: Model) => {
      if (m.step !== 3) return;
      const p = await policy.getParams();
      p[7] = NaN;
      await policy.setParams(p);
    };
    const { err, seen } = await run({}, out, { poison });
    expect(err?.code).toBe('ERR_SCORE_NUMERIC');
    expect(err?.message).toMatch(/^step 4: .*logits contain NaN .*the last checkpoint is step-000002$/);
    expect(seen.length).toBe(3);
    const latest = JSON.parse(readFileSync(join(out, 'checkpoints', 'latest.json'), 'utf8'));
    expect(latest.step).toBe(2);
    expect(await allFinite(join(out, 'checkpoints', latest.dir))).toBe(true);
  });

  it('a checkpoint of non-finite weights is refused and leaves nothing behind', async () => {
    const out = tmp();
    const m = await tinyModel(1);
    const p = await m.getParams();
    p[0] = Infinity;
    await m.setParams(p);
    await expect(saveCheckpoint(out, m, { step: 5, dataPosition: 0, seed: 0, rng: 'derived from seed and step' })).rejects.toMatchObject({ code: 'ERR_SCORE_NUMERIC', message: expect.stringContaining('parameter 0') });
    expect(existsSync(join(out, 'checkpoints', 'step-000005'))).toBe(false);
    expect(existsSync(join(out, 'checkpoints', 'latest.json'))).toBe(false);
    m.dispose();
  });
});
