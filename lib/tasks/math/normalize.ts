// String normalisation of final answers, in the spirit of the MATH paper's
// (Hendrycks et al.) and Minerva's (Lewkowycz et al.) normalisers: the same
// surface differences are erased (delimiters, \left/\right, \dfrac, units, degrees,
// thousands separators, "x =" prefixes, shorthand \frac12 and \sqrt2), written anew.
import { braceGroup, lastBoxed } from './extract.js';

/** Unit words dropped after a number (singular and plural forms are both listed where they differ). */
const UNITS = [
  'square', 'sq', 'cubic', 'units?', 'unit', 'ways?', 'integers?', 'dollars?', 'cents?', 'mph', 'inch(?:es)?', 'ft', 'feet', 'foot',
  'hours?', 'hrs?', 'minutes?', 'mins?', 'seconds?', 'secs?', 'days?', 'weeks?', 'months?', 'years?', 'km', 'kilometers?', 'meters?', 'm',
  'cm', 'mm', 'miles?', 'mi', 'yards?', 'gm', 'grams?', 'g', 'kg', 'pounds?', 'lbs?', 'ounces?', 'oz', 'liters?', 'ml', 'gallons?',
  'points?', 'digits?', 'degrees?', 'students?', 'people', 'persons?', 'edges?', 'meals?', 'tickets?', 'multiples?', 'sides?', 'times',
  'percent', 'positive', 'numbers?', 'cups?', 'boxes?', 'pages?', 'marbles?', 'coins?', 'apples?', 'books?', 'pieces?', 'rows?',
  'sq\\.?\\s*units?', 'square\\s+units?', 'square\\s+(?:feet|inch(?:es)?|meters?|cm|centimeters?)', 'centimeters?', 'millimeters?',
  'bits?', 'bytes?', 'rpm', 'mph', 'kph', 'm/s', 'km/h', 'calories', 'steps', 'cookies', 'games', 'hits', 'votes',
];
const UNIT_RE = new RegExp(`^(?:${UNITS.join('|')})(?:\\^\\{?[23]\\}?)?\\.?$`, 'i');

/** Replace every `\cmd{X}` by `f(X)` with balanced braces. */
function mapCommand(s: string, cmd: string, f: (inner: string) => string): string {
  const re = new RegExp(`\\\\${cmd}(?![a-zA-Z])\\s*\\{`, 'g');
  let out = '';
  let from = 0;
  for (let m = re.exec(s); m; m = re.exec(s)) {
    const open = m.index + m[0].length - 1;
    const g = braceGroup(s, open);
    if (!g) break;
    out += s.slice(from, m.index) + f(g.inner);
    from = g.end;
    re.lastIndex = g.end;
  }
  return out + s.slice(from);
}

/** Drop trailing unit words, written bare or inside \text{}. */
function dropUnits(s: string): string {
  for (let k = 0; k < 3; k++) {
    const m = /(?:\\text\{\s*([^{}]*)\}|\s+([a-zA-Z][a-zA-Z./ ]*))(\^\{?[23]\}?)?\s*$/.exec(s);
    if (!m || m.index === 0) return s;
    const word = (m[1] ?? m[2] ?? '').trim();
    if (word !== '' && !UNIT_RE.test(word)) return s;
    s = s.slice(0, m.index).trimEnd();
  }
  return s;
}

/** Shorthand arguments: \frac12 -> \frac{1}{2}, \frac{3}4, \sqrt2 -> \sqrt{2}. */
function fixShorthand(s: string): string {
  const arg = String.raw`(\{(?:[^{}]|\{[^{}]*\})*\}|\\[a-zA-Z]+|[0-9a-zA-Z])`;
  s = s.replace(new RegExp(String.raw`\\frac\s*${arg}\s*${arg}`, 'g'), (_, a: string, b: string) => `\\frac{${unbrace(a)}}{${unbrace(b)}}`);
  s = s.replace(/\\sqrt\s*([0-9a-zA-Z])/g, '\\sqrt{$1}');
  return s;
}
function unbrace(a: string): string {
  return a.startsWith('{') ? a.slice(1, -1) : a;
}

export interface Normalized {
  text: string; // normalised LaTeX (spaces kept only where they separate a command from a letter)
  percent: boolean; // a % sign was removed
}

const cache = new Map<string, Normalized>();
const CACHE_SIZE = 4096;

/** Normalise a final answer (memoised: graders see the same gold answers again and again). */
export function normalizeAnswer(input: string): Normalized {
  const hit = cache.get(input);
  if (hit) return hit;
  const n = normalizeUncached(input);
  if (cache.size >= CACHE_SIZE) cache.clear();
  cache.set(input, n);
  return n;
}

function normalizeUncached(input: string): Normalized {
  let s = input.trim();
  const boxed = /^\\(?:boxed|fbox)\b/.test(s) ? lastBoxed(s) : undefined;
  if (boxed !== undefined) s = boxed;
  s = s.replace(/\r?\n/g, ' ');
  // math delimiters; of several $...$ segments the last one holds the answer
  const dollars = [...s.matchAll(/(?<!\\)\$+([^$]*?)(?<!\\)\$+/g)];
  if (dollars.length > 0) s = dollars[dollars.length - 1]![1]!;
  s = s.replace(/^\\\(|\\\)$|^\\\[|\\\]$/g, '');
  s = s.replace(/\\(?:dfrac|tfrac|cfrac)/g, '\\frac').replace(/\\(?:mbox|textrm|textnormal|textup|textit|textbf|mathrm|mathbf|mathit|operatorname|rm)(?![a-zA-Z])/g, '\\text');
  s = s.replace(/\\(?:left|right|bigl|bigr|Bigl|Bigr|big|Big|displaystyle)(?![a-zA-Z])\.?/g, '');
  s = s.replace(/(?<!\\)\\[!,;:> ]|~/g, ' ').replace(/\\(?:quad|qquad)(?![a-zA-Z])/g, ' ');
  s = s.replace(/\{,\}/g, ',');
  // degrees, dollars, percent
  s = s.replace(/\^\s*\{?\s*\\circ\s*\}?|\\circ|\\degree|°/g, '');
  s = s.replace(/\\\$|\$/g, '');
  let percent = false;
  if (/\\?%/.test(s)) {
    percent = true;
    s = s.replace(/\\?%/g, '');
  }
  s = s.replace(/\\text\{\s*\}/g, '');
  s = dropUnits(s.trim());
  s = s.replace(/\s*\\text\{\s*(?:and|or)\s*\}\s*/g, ',');
  s = s.replace(/(^|[^a-zA-Z\\])infinity\b/gi, '$1\\infty').replace(/\\inf(?![a-zA-Z])/g, '\\infty');
  s = fixShorthand(s);
  // x \in [a,b]  and  x = 5  (a single, possibly subscripted, variable on the left)
  s = s.replace(/^\s*[a-zA-Z](?:_\{?[a-zA-Z0-9]+\}?)?\s*\\in\s*/, '');
  const eq = /^\s*(?:[a-zA-Z]|\\[a-zA-Z]+)(?:_\{?[a-zA-Z0-9]+\}?)?\s*=\s*([^=<>]*)$/.exec(s);
  if (eq && !/[a-zA-Z]/.test(eq[1]!.replace(/\\[a-zA-Z]+/g, ''))) s = eq[1]!;
  s = s.trim().replace(/\.$/, '').trim();
  // thousands separators, then leading-dot decimals
  if (/^-?\d{1,3}(?:\s*,\s*\d{3})+(?:\.\d+)?$/.test(s)) s = s.replace(/\s*,\s*/g, '');
  s = s.replace(/(\d)\s+(?=\d{3}(?!\d))/g, '$1');
  s = s.replace(/(^|[^\d}])\.(\d)/g, '$10.$2');
  s = s.replace(/_\s*([a-zA-Z0-9])/g, '_{$1}'); // one-character subscripts in braces: 52_8, 52_{8}, \log_2 8
  // spaces: keep one only where it ends a command name before a letter (\pi r), drop the rest
  s = s.replace(/(\\[a-zA-Z]+)\s+(?=[a-zA-Z])/g, '$1{}').replace(/\s+/g, '');
  s = s.replace(/\{\}(?=[^a-zA-Z]|$)/g, '');
  // a mixed number written alone: 1\frac{4}{5} is 9/5, not 4/5
  const mixed = /^(-?)(\d+)\\frac\{(\d+)\}\{(\d+)\}$/.exec(s);
  if (mixed && Number(mixed[4]) !== 0) {
    const [whole, num, den] = [BigInt(mixed[2]!), BigInt(mixed[3]!), BigInt(mixed[4]!)];
    s = `${mixed[1]}\\frac{${whole * den + num}}{${den}}`;
  }
  return { text: s, percent };
}

/** Reduce a textual answer to lowercase letters and digits: `\text{(C)}` and `C` both give `c`. */
export function plainText(s: string): string {
  return mapCommand(s, 'text', (x) => x)
    .replace(/\\[a-zA-Z]+/g, '')
    .toLowerCase()
    .replace(/[^a-z0-9]/g, '');
}

export { mapCommand };
