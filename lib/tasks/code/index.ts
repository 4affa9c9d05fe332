export { CodeTask, programFor, type CodeTaskOptions } from './task.js';
export { SandboxPool, type PoolOptions } from './pool.js';
export { runProgram, detectIsolation, resolvePython, DEFAULT_LIMITS, type RunResult, type SandboxLimits, type Isolation } from './sandbox.js';
export { extractProgram, testsFor, definedFunctions } from './extract.js';
export { loadCodeData, loadHumanEval, loadMbpp, type CodeLoadOptions, type CodeFormat, type MbppSplit } from './load.js';
