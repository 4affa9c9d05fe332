// Tasks: data sets plus verifiers, behind one small interface (see task.ts).
export { TaskInputError, type Task, type TaskRecord, type Reward } from './task.js';
export { readJsonl, parseJsonl, type JsonlOptions, type OnBadLine } from './jsonl.js';
export * as math from './math/index.js';
export * as code from './code/index.js';
export { MathTask } from './math/task.js';
export { CodeTask } from './code/task.js';
