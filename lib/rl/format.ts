// How an episode's two turns become token ids. SCoRe's episode (Kumar et al. 2024):
//   x1 = prompt;  y1 ~ pi(. | x1);  x2 = x1 + y1 + instruction;  y2 ~ pi(. | x2).
// The turns are joined at the token level, never by re-encoding text, so the
// tokens of y1 inside x2 are exactly the ones that were sampled: one forward pass
// over x1 + y1 + instruction + y2 gives the log-probabilities of both attempts.
import type { ChatMessage, Tokenizer } from '../tokenizer/types.js';
import { ScoreError } from '../model/errors.js';

/** The paper's self-correction instructions, verbatim. */
export const MATH_SELF_CORRECTION =
  'There might be an error in the solution above because of lack of understanding of the question. ' +
  'Please correct the error, if any, and rewrite the solution. Only output the final solution! ' +
  'At the end of the Solution, when you give your final answer, write it in the form ' +
  '"Final Answer: The final answer is $answer$. I hope it is correct."';
export const CODE_SELF_CORRECTION =
  'There might be an error in the code above because of lack of understanding of the question. ' +
  'Please correct the error, if any, and rewrite the solution. Only output the final correct Python program!';

export interface EpisodeFormat {
  /** token ids of the first turn's prompt x1 */
  first(prompt: string): number[];
  /** x2 = x1 + y1 + the self-correction turn (y1 as sampled, its EOS included) */
  second(x1: readonly number[], y1: readonly number[]): number[];
  /** the text of an attempt, for the verifier */
  text(y: readonly number[]): string;
  /** generation stops at this id (null: only at stop sequences or the length limit) */
  readonly eosId: number | null;
  readonly stop: number[][];
}

export interface PlainFormatOptions {
  instruction: string;
  /** text between the first attempt and the instruction, and after it (default "\n\n") */
  separator?: string;
  /** start x1 with the tokenizer's BOS id (default: when it has one) */
  bos?: boolean;
}

/** No chat template: x1 = [BOS] + prompt; x2 = x1 + y1 [+ EOS if y1 was cut] + sep + instruction + sep. */
export function plainFormat(tok: Tokenizer, opts: PlainFormatOptions): EpisodeFormat {
  const sep = opts.separator ?? '\n\n';
  const eos = tok.eosTokenId ?? null;
  const bos = opts.bos ?? tok.bosTokenId !== undefined;
  if (bos && tok.bosTokenId === undefined) throw new ScoreError('ERR_SCORE_INVALID_ARGUMENT', 'plainFormat: bos requested but the tokenizer has no BOS token');
  const turn = tok.encode(sep + opts.instruction + sep);
  return {
    eosId: eos,
    stop: [],
    first: (prompt) => [...(bos ? [tok.bosTokenId!] : []), ...tok.encode(prompt)],
    second: (x1, y1) => [...x1, ...closeTurn(y1, eos), ...turn],
    text: (y) => tok.decode(stripEos(y, eos), { skipSpecialTokens: true }),
  };
}

/** With a chat template: x1 = render([user: prompt]) with the assistant header; x2 appends
 * y1 (closed by the end-of-turn token) and the rendered user turn holding the instruction. */
export function chatFormat(tok: Tokenizer, render: (m: ChatMessage[], addGenerationPrompt: boolean) => string, instruction: string): EpisodeFormat {
  const eos = tok.eosTokenId ?? null;
  // The text the template puts after an assistant turn's content, up to the next assistant
  // header: found by rendering a conversation around a marker that cannot occur in it.
  const marker = '\u0001SCORE_RL_ATTEMPT\u0001';
  const full = render([{ role: 'user', content: 'x' }, { role: 'assistant', content: marker }, { role: 'user', content: instruction }], true);
  const at = full.indexOf(marker);
  if (at < 0) throw new ScoreError('ERR_SCORE_INVALID_ARGUMENT', 'chat template: the assistant turn does not render its content');
  let suffix = full.slice(at + marker.length);
  // y1 already ends with the end-of-turn token when the model stopped there
  const eosText = eos === null ? '' : tok.decode([eos]);
  const suffixIds = tok.encode(suffix);
  const closedSuffix = eosText !== '' && suffix.startsWith(eosText) ? tok.encode(suffix.slice(eosText.length)) : suffixIds;
  return {
    eosId: eos,
    stop: [],
    first: (prompt) => tok.encode(render([{ role: 'user', content: prompt }], true)),
    second: (x1, y1) => (eos !== null && y1[y1.length - 1] === eos ? [...x1, ...y1, ...closedSuffix] : [...x1, ...y1, ...suffixIds]),
    text: (y) => tok.decode(stripEos(y, eos), { skipSpecialTokens: true }),
  };
}

function stripEos(y: readonly number[], eos: number | null): readonly number[] {
  return eos !== null && y.length > 0 && y[y.length - 1] === eos ? y.slice(0, -1) : y;
}

/** An attempt cut by the length limit is closed with EOS, so that the next turn starts cleanly. */
function closeTurn(y: readonly number[], eos: number | null): readonly number[] {
  return eos === null || (y.length > 0 && y[y.length - 1] === eos) ? y : [...y, eos];
}
