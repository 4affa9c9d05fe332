// Run checkpoints: checkpoints/step-NNNNNN/ holds the policy as a Hugging Face folder
// (it opens in other tools), optimizer.safetensors (AdamW moments and step) and
// trainer.json (step, data position, seed). latest.json names the newest complete one;
// best.json the one with the best training reward (the paper's selection rule).
import { existsSync, readdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { loadModel, type Model } from '../model/model.js';
import { ScoreError } from '../model/errors.js';
import { decodeOptimizerState, encodeOptimizerState, ensureDir, writeFileAtomic, writeJsonAtomic } from './files.js';

export interface TrainerState {
  /** steps completed */
  step: number;
  /** records consumed so far (the data order is a seeded permutation per epoch) */
  dataPosition: number;
  seed: number;
  /** every random choice is derived from (seed, step): nothing else to store */
  rng: 'derived from seed and step';
}

export interface Marker {
  step: number;
  dir: string;
  reward?: number;
}

function firstNonFinite(a: Float32Array): number {
  for (let i = 0; i < a.length; i++) if (!Number.isFinite(a[i]!)) return i;
  return -1;
}

const name = (step: number) => `step-${String(step).padStart(6, '0')}`;

/** Writes a checkpoint folder under a temporary name, then renames it into place and points
 * latest.json at it; a kill at any moment leaves the previous checkpoint named and intact. */
export async function saveCheckpoint(out: string, policy: Model, state: TrainerState, extraFiles: Record<string, string> = {}): Promise<string> {
  const root = join(out, 'checkpoints');
  ensureDir(root);
  // never a checkpoint with a non-finite value in it
  const bad = firstNonFinite(await policy.getParams());
  if (bad >= 0)
    throw new ScoreError('ERR_SCORE_NUMERIC', `weights hold a non-finite value (parameter ${bad}) at step ${state.step}: no checkpoint written; the last good one is ${readMarker(out, 'latest')?.dir ?? 'none'}`);
  const final = join(root, name(state.step));
  const tmp = join(root, `.tmp-${name(state.step)}-${process.pid}`);
  rmSync(tmp, { recursive: true, force: true });
  try {
    await policy.save(tmp);
    const opt = await policy.getOptimizerState();
    if (firstNonFinite(opt.m) >= 0 || firstNonFinite(opt.v) >= 0)
      throw new ScoreError('ERR_SCORE_NUMERIC', `optimizer state holds a non-finite value at step ${state.step}: no checkpoint written`);
    writeFileAtomic(join(tmp, 'optimizer.safetensors'), encodeOptimizerState(opt));
    for (const [f, text] of Object.entries(extraFiles)) writeFileAtomic(join(tmp, f), text);
    writeJsonAtomic(join(tmp, 'trainer.json'), state);
  } catch (e) {
    // a full disk, a write error: the previous checkpoint stays the named one
    rmSync(tmp, { recursive: true, force: true });
    const err = e as { code?: string; message?: string };
    if (err.code === 'ERR_SCORE_NUMERIC') throw e;
    throw new ScoreError(err.code?.startsWith('ERR_SCORE') ? err.code : 'ERR_SCORE_IO', `checkpoint of step ${state.step} not written (${err.message ?? String(e)}); the last complete one is ${readMarker(out, 'latest')?.dir ?? 'none'}`);
  }
  rmSync(final, { recursive: true, force: true });
  renameSync(tmp, final);
  writeJsonAtomic(join(root, 'latest.json'), { step: state.step, dir: name(state.step) } satisfies Marker);
  return final;
}

export function readMarker(out: string, which: 'latest' | 'best'): Marker | null {
  const p = join(out, 'checkpoints', `${which}.json`);
  if (!existsSync(p)) return null;
  try {
    return JSON.parse(readFileSync(p, 'utf8')) as Marker;
  } catch {
    throw new ScoreError('ERR_SCORE_FORMAT', `${p}: not valid JSON`);
  }
}

export function markBest(out: string, step: number, reward: number): void {
  writeJsonAtomic(join(out, 'checkpoints', 'best.json'), { step, dir: name(step), reward } satisfies Marker);
}

/** Restores policy weights and optimizer state from the latest checkpoint; null when none. */
export async function restoreLatest(out: string, policy: Model): Promise<TrainerState | null> {
  const m = readMarker(out, 'latest');
  if (!m) return null;
  const dir = join(out, 'checkpoints', m.dir);
  const saved = await loadModel(dir); // on the CPU: only its weights are wanted
  try {
    await policy.setParams(await saved.getParams());
  } finally {
    saved.dispose();
  }
  const optFile = join(dir, 'optimizer.safetensors');
  await policy.setOptimizerState(decodeOptimizerState(readFileSync(optFile), optFile));
  return JSON.parse(readFileSync(join(dir, 'trainer.json'), 'utf8')) as TrainerState;
}

/** Removes all but the `keep` newest checkpoints, sparing the best one and temporaries of live writers. */
export function pruneCheckpoints(out: string, keep: number): void {
  const root = join(out, 'checkpoints');
  if (!existsSync(root)) return;
  const best = readMarker(out, 'best')?.dir;
  const latest = readMarker(out, 'latest')?.dir;
  const steps = readdirSync(root).filter((d) => /^step-\d+$/.test(d)).sort();
  for (const d of steps.slice(0, Math.max(0, steps.length - keep))) if (d !== best && d !== latest) rmSync(join(root, d), { recursive: true, force: true });
  // folders of writers that were killed mid-checkpoint
  for (const d of readdirSync(root)) if (d.startsWith('.tmp-') && !d.endsWith(`-${process.pid}`)) rmSync(join(root, d), { recursive: true, force: true });
}
