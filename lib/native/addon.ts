// Loads the compiled Node-API addon (build/Release/score_addon.node) and
// describes its raw interface. Only lib/model talks to it.
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** A packed batch of right-padded sequences: tokens (B*T), lengths (B). */
export interface NativeBatch {
  tokens: Int32Array;
  lengths: Int32Array;
  B: number;
  T: number;
}

/** AdamW settings (defaults: beta1 0.9, beta2 0.999, eps 1e-8, no weight decay, no clipping). */
export interface OptimizerOptions {
  lr: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
  weightDecay?: number;
  /** global-norm gradient clipping; <= 0 or absent: none */
  maxGradNorm?: number;
}

/** AdamW moments (ParamLayout order, zeros before the first step) and the steps taken. */
export interface OptimizerState {
  m: Float32Array;
  v: Float32Array;
  step: number;
}

/** Bytes a model holds between calls, by kind (see native/include/score/backend.h). */
export interface MemoryUse {
  /** the weights */
  params: number;
  /** the gradient buffer (trainable models, from the first backward pass) */
  grads: number;
  /** AdamW moments */
  optimizer: number;
  /** forward values kept for the backward pass, sized by the largest batch so far */
  activations: number;
  /** the backward pass's work buffers, other per-row buffers, and what generate() keeps
   * between calls on the CPU (KV cache and packed weights; released when a batch needs it) */
  scratch: number;
}

export interface NativeModel {
  info(): { config: string; numParams: number; device: string; trainable: boolean; memoryBytes: number; memory: MemoryUse };
  logprobs(b: NativeBatch & { entropy?: boolean }): Promise<{ logp: Float32Array; entropy?: Float32Array }>;
  sftStep(b: NativeBatch & { weight: Float32Array; norm: number }): Promise<{ loss: number; tokens: number; weightSum: number }>;
  optimizerStep(o: OptimizerOptions): Promise<{ gradNorm: number; clipScale: number; step: number; skipped: boolean }>;
  rlStep(b: NativeBatch & {
    mask: Float32Array;
    wPg?: Float32Array;
    advantages?: Float32Array;
    wKl?: Float32Array;
    refLogp?: Float32Array;
    oldLogp?: Float32Array;
    kl?: 'k1' | 'k3';
    clipEps?: number;
    norm: number;
  }): Promise<{ loss: number; pgLoss: number; klLoss: number; klMean: number; entropy: number; clipFrac: number; tokens: number; weightSum: number }>;
  generate(o: {
    prompts: Int32Array;
    promptLengths: Int32Array;
    n?: number;
    maxNewTokens?: number;
    eosId?: number;
    stop?: Int32Array;
    stopLengths?: Int32Array;
    temperature?: number;
    topK?: number;
    topP?: number;
    seed?: number;
    memoryBudget?: number;
    onProgress?: (step: number, active: number) => void;
  }): Promise<{
    tokens: Int32Array;
    lengths: Int32Array;
    finish: Int32Array;
    logp: Float32Array;
    logpSampling: Float32Array;
    kvCacheBytes: number;
    steps: number;
  }>;
  abort(): void;
  save(dir: string): Promise<void>;
  clone(trainable: boolean): Promise<NativeModel>;
  getParams(): Promise<Float32Array>;
  setParams(p: Float32Array): Promise<void>;
  getOptimizerState(): Promise<OptimizerState>;
  setOptimizerState(s: OptimizerState): Promise<void>;
  dispose(): void;
}

export interface DeviceOptions {
  device?: 'cpu' | 'cuda';
  cudaLibrary?: string;
}

export interface Addon {
  loadModel(dir: string, opts?: DeviceOptions): Promise<NativeModel>;
  initModel(configJson: string, seed: number, opts?: DeviceOptions): Promise<NativeModel>;
  /** CUDA device 0 in words ("NVIDIA H200 (sm_90, 139 GiB)"), or why there is none. */
  describeCuda(opts: DeviceOptions): Promise<{ ok: boolean; text: string }>;
  /** Times sgemm at one shape (form nn | nt | tn) and checks it against a double reference. */
  benchGemm(o: { M: number; N: number; K: number; form: 'nn' | 'nt' | 'tn'; reps?: number; warmup?: number }): Promise<{ ms: number[]; maxRelErr: number }>;
}

/** The package root (holds package.json and build/), from lib/native or dist/native. */
export const packageRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

let cached: Addon | undefined;

export function addon(): Addon {
  if (cached) return cached;
  const candidates = [
    process.env.SCORE_ADDON,
    path.join(packageRoot, 'build', 'Release', 'score_addon.node'),
    path.join(packageRoot, 'build', 'Debug', 'score_addon.node'),
  ].filter((p): p is string => !!p);
  const found = candidates.find((p) => existsSync(p));
  if (!found) {
    const err = new Error(
      `score-rl: the native addon is not built (looked for ${candidates.join(', ')}); run \`npm run build:native\``,
    ) as Error & { code: string };
    err.code = 'ERR_SCORE_NO_ADDON';
    throw err;
  }
  // libgomp reads its settings once, when the addon loads it. OpenMP threads spin at a
  // barrier before they sleep; libgomp's default spin (about 3 ms) burns the cores of a
  // busy machine, while sleeping at once (what it does with more threads than cores, or
  // OMP_WAIT_POLICY=passive) costs a futex wake per parallel region, and a decode step has
  // about 40 of them. A short spin (~0.1-0.3 ms) covers the gaps inside a step and sleeps
  // between calls. The user's own setting wins.
  if (process.env.GOMP_SPINCOUNT === undefined && process.env.OMP_WAIT_POLICY === undefined) process.env.GOMP_SPINCOUNT = GOMP_SPINCOUNT;
  cached = createRequire(import.meta.url)(found) as Addon;
  return cached;
}

/** The spin count the addon gives libgomp unless the environment sets one (see addon()). */
export const GOMP_SPINCOUNT = '20000';

/** Where the CUDA backend library would be, next to the addon. */
export function cudaLibraryPath(): string {
  return path.join(packageRoot, 'build', 'Release', 'libscore_cuda.so');
}
