// score-rl's public API. See README.md ("API") for an example.
export { Model, loadModel, initModel } from './model/model.js';
export type { LoadOptions, LogprobsResult, SftBatch } from './model/model.js';
export type { MemoryUse, OptimizerOptions, OptimizerState } from './native/addon.js';
export { ScoreError } from './model/errors.js';
export { PRESETS, presetConfig, getPreset, ARCHS } from './model/presets.js';
export type { Arch, Preset } from './model/presets.js';
export type { TokensInput } from './model/batch.js';
export type { GenerateOptions, GenerateResult, Generation, FinishReason, RlBatch, RlStats } from './model/rollout.js';
