// Final-answer extraction from solution or model text.

/** Content of the brace group opening at `open` (s[open] === '{'), or undefined if unbalanced. */
export function braceGroup(s: string, open: number): { inner: string; end: number } | undefined {
  let depth = 0;
  for (let i = open; i < s.length; i++) {
    const c = s[i];
    if (c === '\\') {
      i++; // skip escaped characters such as \{ and \}
      continue;
    }
    if (c === '{') depth++;
    else if (c === '}' && --depth === 0) return { inner: s.slice(open + 1, i), end: i + 1 };
  }
  return undefined;
}

/** The argument of the last \boxed{...} or \fbox{...} (also `\boxed 5`), braces balanced. */
export function lastBoxed(text: string): string | undefined {
  const re = /\\(?:boxed|fbox)(?![a-zA-Z])/g;
  let last: RegExpExecArray | undefined;
  for (let m = re.exec(text); m; m = re.exec(text)) last = m;
  if (!last) return undefined;
  let i = last.index + last[0].length;
  while (text[i] === ' ') i++;
  if (text[i] === '{') return braceGroup(text, i)?.inner.trim();
  // `\boxed 5`: the rest up to a math delimiter or the end of the line
  const rest = /^[^$\n]+/.exec(text.slice(i));
  const v = rest?.[0].trim();
  return v ? v : undefined;
}

function stripMathDelims(s: string): string {
  let t = s.trim();
  for (;;) {
    const before = t;
    if (t.startsWith('$$') && t.endsWith('$$') && t.length >= 4) t = t.slice(2, -2).trim();
    else if (t.startsWith('$') && t.endsWith('$') && t.length >= 2) t = t.slice(1, -1).trim();
    else if (/^\\[([]/.test(t) && /\\[)\]]$/.test(t)) t = t.slice(2, -2).trim();
    if (t === before) return t;
  }
}

function lastMatch(re: RegExp, text: string): RegExpExecArray | undefined {
  let last: RegExpExecArray | undefined;
  for (let m = re.exec(text); m; m = re.exec(text)) last = m;
  return last;
}

export type ExtractMethod = 'final-answer' | 'boxed' | 'the-answer-is' | 'hashes' | 'whole-text';

export interface Extracted {
  answer: string;
  method: ExtractMethod;
}

/** Pull the final answer out of model (or reference) text. Preference: Minerva's
 * "Final Answer: The final answer is X. I hope it is correct.", the last \boxed{},
 * "The answer is X", GSM8K's "#### X". */
export function extractAnswer(text: string): Extracted | undefined {
  const fa =
    lastMatch(/Final Answer: The final answer is([\s\S]*?)\.?\s*I hope it is correct/g, text) ??
    lastMatch(/Final Answer: The final answer is([^\n]*)/g, text);
  if (fa) {
    let a = fa[1]!.trim().replace(/\.$/, '').trim();
    const boxed = lastBoxed(a);
    if (boxed !== undefined) a = boxed;
    a = stripMathDelims(a);
    if (a) return { answer: a, method: 'final-answer' };
  }
  const boxed = lastBoxed(text);
  if (boxed) return { answer: stripMathDelims(boxed), method: 'boxed' };
  const ans = lastMatch(/\b[Tt]he (?:final )?answer is:?\s*([^\n]*)/g, text);
  if (ans) {
    // Minerva's closing words without its "Final Answer:" prefix, and (outside math
    // delimiters) the rest of the sentence: "The answer is 5. So ..." gives 5
    let a = ans[1]!.trim().replace(/\.?\s*I hope it is correct\.?$/i, '');
    if (!a.includes('$')) a = a.replace(/\.(?:\s[\s\S]*)?$/, '');
    a = stripMathDelims(a.trim().replace(/\.$/, ''));
    if (a) return { answer: a, method: 'the-answer-is' };
  }
  const hashes = lastMatch(/####\s*([^\n]*)/g, text);
  if (hashes) {
    const a = stripMathDelims(hashes[1]!.trim().replace(/\.$/, ''));
    if (a) return { answer: a, method: 'hashes' };
  }
  return undefined;
}
