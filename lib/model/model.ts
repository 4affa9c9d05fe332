// The Model: a transformer held by the native core. Every method that computes
// returns a Promise and runs off the JavaScript thread; calls on one model are
// queued and run one at a time, in order.
import { addon, cudaLibraryPath, type DeviceOptions, type MemoryUse, type NativeModel, type OptimizerOptions, type OptimizerState } from '../native/addon.js';
import { fullMask, packTargets, packTokens, targetSum, unpackRows, type TokensInput } from './batch.js';
import { asScoreError, ScoreError } from './errors.js';
import { presetConfig, type Arch } from './presets.js';
import { addStats, packRagged, packRl, splitRows, unpackGeneration, type GenerateOptions, type GenerateResult, type RlBatch, type RlStats } from './rollout.js';

export interface LoadOptions {
  /** 'cpu' (default) or 'cuda' */
  device?: 'cpu' | 'cuda';
}

export interface LogprobsResult {
  /** (B, T-1): logp[b*(T-1)+t] = log p(tokens[b][t+1] | tokens[b][0..t]); 0 past a row's end */
  logp: Float32Array;
  /** (B, T-1) entropy of the next-token distribution, when asked for */
  entropy?: Float32Array;
  B: number;
  T: number;
  lengths: Int32Array;
  /** logp as ragged rows (lengths[b] - 1 values each) */
  rows(): number[][];
}

export interface SftBatch {
  tokens: TokensInput;
  /** per-target loss weights: ragged rows (lengths-1 each) or packed (B, T-1); default all ones */
  mask?: readonly (readonly number[])[] | Float32Array;
  /** divide the weighted loss sum by this (default: this batch's weight sum); pass the total of
   *  all micro-batches to accumulate gradients of one large batch */
  norm?: number;
}

function deviceOptions(opts?: LoadOptions): DeviceOptions {
  const device = opts?.device ?? 'cpu';
  if (device !== 'cpu' && device !== 'cuda')
    throw new ScoreError('ERR_SCORE_INVALID_ARGUMENT', `device '${String(device)}' is unknown (expected 'cpu' or 'cuda')`);
  return device === 'cuda' ? { device, cudaLibrary: cudaLibraryPath() } : { device };
}

export class Model {
  #native: NativeModel | null;
  #queue: Promise<unknown> = Promise.resolve();
  /** The Hugging Face config.json of this model (as it would be saved). */
  readonly config: Record<string, unknown>;
  readonly numParams: number;
  readonly device: string;
  /** false for a frozen reference clone (no gradients, no optimizer state) */
  readonly trainable: boolean;

  private constructor(native: NativeModel) {
    this.#native = native;
    const info = native.info();
    this.config = JSON.parse(info.config) as Record<string, unknown>;
    this.numParams = info.numParams;
    this.device = info.device;
    this.trainable = info.trainable;
  }

  /** @internal wraps a native handle */
  static fromNative(native: NativeModel): Model {
    return new Model(native);
  }

  get vocabSize(): number {
    return this.config.vocab_size as number;
  }
  get maxPositions(): number {
    return (this.config.n_positions ?? this.config.max_position_embeddings) as number;
  }
  get disposed(): boolean {
    return this.#native === null;
  }
  /** Bytes held natively: weights, gradients, optimizer state, activation buffers. */
  memoryBytes(): number {
    return this.#handle().info().memoryBytes;
  }
  /** The same bytes by kind. Not included: buffers a call allocates and frees again. */
  memoryUse(): MemoryUse {
    return this.#handle().info().memory;
  }

  #handle(): NativeModel {
    if (!this.#native) throw new ScoreError('ERR_SCORE_DISPOSED', 'the model was disposed');
    return this.#native;
  }

  // Runs calls one after another; a failed call does not stop the queue.
  #enqueue<T>(fn: (m: NativeModel) => Promise<T>): Promise<T> {
    const next = this.#queue.then(
      () => fn(this.#handle()),
      () => fn(this.#handle()),
    );
    this.#queue = next.catch(() => undefined);
    return next.catch((e: unknown) => {
      throw asScoreError(e);
    });
  }

  /** Per-token log-probabilities of the given sequences (teacher forcing). */
  logprobs(tokens: TokensInput, opts: { entropy?: boolean } = {}): Promise<LogprobsResult> {
    return this.#enqueue(async (m) => {
      const batch = packTokens(tokens);
      const r = await m.logprobs({ ...batch, entropy: opts.entropy ?? false });
      return { ...r, B: batch.B, T: batch.T, lengths: batch.lengths, rows: () => unpackRows(r.logp, batch) };
    });
  }

  /** Forward + backward of the (masked) next-token cross-entropy; gradients accumulate until optimizerStep. */
  sftStep(b: SftBatch): Promise<{ loss: number; tokens: number; weightSum: number }> {
    return this.#enqueue(async (m) => {
      const batch = packTokens(b.tokens);
      const weight = b.mask === undefined ? fullMask(batch) : packTargets(b.mask, batch, 'mask');
      if (b.norm !== undefined && !(Number.isFinite(b.norm) && b.norm > 0))
        throw new ScoreError('ERR_SCORE_INVALID_ARGUMENT', `norm must be a positive number, got ${b.norm}`);
      return m.sftStep({ ...batch, weight, norm: b.norm ?? (targetSum(weight, batch) || 1) });
    });
  }

  /**
   * Samples completions for token-id prompts with a KV cache: `n` samples per prompt sharing
   * the prompt's prefill; each stops at EOS, at a stop sequence or at maxNewTokens.
   */
  generate(prompts: readonly (readonly number[])[], opts: GenerateOptions = {}): Promise<GenerateResult> {
    return this.#enqueue(async (m) => {
      const { flat, lengths } = packRagged(prompts, 'prompts');
      const stop = opts.stop ? packRagged(opts.stop, 'stop') : undefined;
      const n = opts.n ?? 1;
      const eos = opts.eosId === null ? -1 : (opts.eosId ?? (typeof this.config.eos_token_id === 'number' ? this.config.eos_token_id : -1));
      const signal = opts.signal;
      if (signal?.aborted) throw new ScoreError('ERR_SCORE_ABORTED', 'generate: aborted');
      const onAbort = () => m.abort();
      signal?.addEventListener('abort', onAbort, { once: true });
      try {
        const r = await m.generate({
          prompts: flat, promptLengths: lengths, n, maxNewTokens: opts.maxNewTokens ?? 64, eosId: eos,
          stop: stop?.flat, stopLengths: stop?.lengths, temperature: opts.temperature ?? 1, topK: opts.topK ?? 0,
          topP: opts.topP ?? 1, seed: opts.seed ?? 0, memoryBudget: opts.memoryBudget ?? 0, onProgress: opts.onProgress,
        });
        return unpackGeneration(r, n);
      } finally {
        signal?.removeEventListener('abort', onAbort);
      }
    });
  }

  /**
   * Policy-gradient + KL step: for every target token, weight * (wPg * pg + wKl * KL) / norm,
   * forward + backward, adding into the gradients (then optimizerStep). With `reference`
   * (a frozen clone), its log-probabilities are computed here; `microBatchTokens` splits
   * the batch and accumulates.
   */
  rlStep(b: RlBatch & { reference?: Model }): Promise<RlStats> {
    return this.#enqueue(async (m) => {
      if (b.kl !== undefined && b.kl !== 'k1' && b.kl !== 'k3') throw new ScoreError('ERR_SCORE_INVALID_ARGUMENT', `kl must be 'k1' or 'k3', got '${String(b.kl)}'`);
      let batch: RlBatch = b;
      if (b.reference && b.refLogp === undefined) {
        // KL against a frozen reference: it must be the same kind of model as this one.
        if (b.reference === this) throw new ScoreError('ERR_SCORE_INVALID_ARGUMENT', 'reference must be a separate model (a frozen clone), not the policy itself');
        const r = b.reference.config, c = this.config;
        if (r.model_type !== c.model_type || r.vocab_size !== c.vocab_size)
          throw new ScoreError('ERR_SCORE_INVALID_ARGUMENT', `reference model (${String(r.model_type)}, vocab ${String(r.vocab_size)}) does not match the policy (${String(c.model_type)}, vocab ${String(c.vocab_size)})`);
        const ref = await b.reference.logprobs(b.tokens);
        batch = { ...b, refLogp: ref.rows() };
      }
      if (batch.microBatchTokens === undefined) return m.rlStep(packRl(batch, packTokens(batch.tokens)));
      // One divisor for the whole batch, so the accumulated gradient equals a single step's.
      const norm = batch.norm ?? packRl({ ...batch, refLogp: undefined, microBatchTokens: undefined }, packTokens(batch.tokens)).norm;
      const parts: RlStats[] = [];
      for (const mb of splitRows(batch, batch.microBatchTokens)) parts.push(await m.rlStep(packRl({ ...mb, norm }, packTokens(mb.tokens))));
      return addStats(parts);
    });
  }

  /** AdamW on the accumulated gradients (with optional clipping), then zeroes them. */
  optimizerStep(o: OptimizerOptions): Promise<{ gradNorm: number; clipScale: number; step: number; skipped: boolean }> {
    return this.#enqueue((m) => m.optimizerStep(o));
  }

  /** Writes config.json + model.safetensors (Hugging Face layout, float32), atomically. */
  save(dir: string): Promise<void> {
    return this.#enqueue((m) => m.save(dir));
  }

  /** A copy; `trainable: false` (default) gives a frozen reference model. */
  clone(opts: { trainable?: boolean } = {}): Promise<Model> {
    return this.#enqueue(async (m) => new Model(await m.clone(opts.trainable ?? false)));
  }

  /** All parameters, flat, in the native layout (see docs/native.md). */
  getParams(): Promise<Float32Array> {
    return this.#enqueue((m) => m.getParams());
  }
  setParams(p: Float32Array): Promise<void> {
    return this.#enqueue((m) => m.setParams(p));
  }
  /** AdamW state, for checkpoints that resume exactly. */
  getOptimizerState(): Promise<OptimizerState> {
    return this.#enqueue((m) => m.getOptimizerState());
  }
  setOptimizerState(s: OptimizerState): Promise<void> {
    return this.#enqueue((m) => m.setOptimizerState(s));
  }

  /** Frees the native memory (after any call in flight finishes). Further calls reject with ERR_SCORE_DISPOSED. */
  dispose(): void {
    this.#native?.dispose();
    this.#native = null;
  }
}

/** Loads a Hugging Face checkpoint folder (config.json + model.safetensors or sharded). */
export async function loadModel(dir: string, opts?: LoadOptions): Promise<Model> {
  if (typeof dir !== 'string' || dir === '') throw new ScoreError('ERR_SCORE_INVALID_ARGUMENT', 'loadModel: dir must be a non-empty string');
  try {
    return Model.fromNative(await addon().loadModel(dir, deviceOptions(opts)));
  } catch (e) {
    throw asScoreError(e);
  }
}

/** A randomly initialised model from a Hugging Face config object (or a preset). */
export async function initModel(
  config: Record<string, unknown> | { arch: Arch; preset: string },
  opts: LoadOptions & { seed?: number } = {},
): Promise<Model> {
  const cfg = 'preset' in config && 'arch' in config ? presetConfig(config.arch as Arch, config.preset as string) : config;
  try {
    return Model.fromNative(await addon().initModel(JSON.stringify(cfg), opts.seed ?? 0, deviceOptions(opts)));
  } catch (e) {
    throw asScoreError(e);
  }
}
