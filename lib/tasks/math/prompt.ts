// Prompt formats for math problems.

/** The zero-shot MATH prompt of the SCoRe paper (Kumar et al., 2024), verbatim. */
export const SCORE_MATH_INSTRUCTION =
  'You are a math expert. When you respond, respond only with the Solution of the final Problem, thinking step by step. ' +
  'At the end of the Solution, when you give your final answer, write it in the form ' +
  '"Final Answer: The final answer is $answer$. I hope it is correct."';

/** `score`: the paper's instruction, then the problem; `plain`: the problem alone, then "Solution:";
 * any other string is a template in which `{problem}` is replaced. */
export type MathPromptStyle = 'score' | 'plain' | (string & {});

export function formatPrompt(problem: string, style: MathPromptStyle = 'score'): string {
  if (style === 'score') return `${SCORE_MATH_INSTRUCTION}\n\nProblem:\n${problem}\n\nSolution:`;
  if (style === 'plain') return `Problem:\n${problem}\n\nSolution:`;
  if (!style.includes('{problem}')) throw new Error(`prompt template must contain {problem}: '${style}'`);
  return style.split('{problem}').join(problem);
}
