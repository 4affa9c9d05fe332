export { MathTask, gradeMath, type MathTaskOptions } from './task.js';
export { equivalent, type Verdict, type EquivOptions } from './equiv.js';
export { extractAnswer, lastBoxed, type Extracted } from './extract.js';
export { normalizeAnswer } from './normalize.js';
export { loadMathData, loadMathFolder, loadMathJsonl, loadGsm8k, mathGold, gsm8kGold, type MathFormat, type MathLoadOptions } from './load.js';
export { formatPrompt, SCORE_MATH_INSTRUCTION, type MathPromptStyle } from './prompt.js';
