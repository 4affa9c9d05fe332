// Are two final answers the same? Normalise both, compare strings, then compare
// by shape (tuples, intervals, sets, unions, matrices, equations) down to scalars,
// which are compared as exact rationals, as numbers, or as functions at seeded
// points. A false "equal" is worse than a miss, so every uncertain case says no.
import { close, exactInteger, exactRational, proportional, rationalEqual, sameValue } from './evaluate.js';
import { normalizeAnswer, plainText } from './normalize.js';
import { ParseError, TimeLimit, parseExpr, type Deadline, type Node } from './parse.js';
import { shapeOf, type Shape } from './structure.js';

export interface Verdict {
  equal: boolean;
  reason: string;
}

export interface EquivOptions {
  /** Time limit of one comparison in milliseconds (default 1000). */
  timeoutMs?: number;
}

const MAX_LEN = 2000;
const MAX_RAW = 8000;

interface Ctx {
  deadline: Deadline;
  /** which side's numbers may be read as percentages: scale factors to try on b */
  scales: number[];
  how: string;
}

function parsed(s: string, ctx: Ctx): Node | undefined {
  try {
    return parseExpr(s, ctx.deadline);
  } catch (e) {
    if (e instanceof TimeLimit) throw e;
    if (e instanceof ParseError) return undefined;
    throw e;
  }
}

function scalarEqual(a: string, b: string, ctx: Ctx): boolean {
  if (a === b) return true;
  const ra = exactRational(a);
  const rb = exactRational(b);
  if (ra && rb) {
    for (const k of ctx.scales) {
      const scaled: [bigint, bigint] = k === 1 ? rb : k > 1 ? [rb[0] * BigInt(k), rb[1]] : [rb[0], rb[1] * BigInt(Math.round(1 / k))];
      if (rationalEqual(ra, scaled)) return (ctx.how = 'exact number'), true;
    }
    return false;
  }
  const na = parsed(a, ctx);
  const nb = parsed(b, ctx);
  if (!na || !nb) return false;
  const ia = exactInteger(na);
  const ib = exactInteger(nb);
  if (ia !== undefined && ib !== undefined && ctx.scales.length === 1) {
    if (ia === ib) ctx.how = 'exact integer';
    return ia === ib;
  }
  for (const k of ctx.scales) if (sameValue(na, nb, ctx.deadline, k)) return (ctx.how = 'numeric/symbolic'), true;
  return false;
}

/** A one-variable left side such as `y` or `x_1`. */
function isVariable(s: string): boolean {
  return /^(?:[a-zA-Z]|\\[a-zA-Z]+)(?:_[a-zA-Z0-9]|_\{[a-zA-Z0-9]+\})?$/.test(s);
}

function equationEqual(a: { lhs: string; rhs: string }, b: { lhs: string; rhs: string }, ctx: Ctx): boolean {
  if (a.lhs === b.lhs && scalarEqual(a.rhs, b.rhs, ctx)) return true;
  const f = parsed(`(${a.lhs})-(${a.rhs})`, ctx);
  const g = parsed(`(${b.lhs})-(${b.rhs})`, ctx);
  if (!f || !g) return false;
  ctx.how = 'equivalent equations';
  return proportional(f, g, ctx.deadline);
}

/** Unordered comparison: a perfect matching of equal items. */
function sameMultiset(a: Shape[], b: Shape[], ctx: Ctx): boolean {
  if (a.length !== b.length) return false;
  const used = new Array<boolean>(b.length).fill(false);
  for (const x of a) {
    const j = b.findIndex((y, i) => !used[i] && shapeEqual(x, y, ctx));
    if (j < 0) return false;
    used[j] = true;
  }
  return true;
}

function shapeEqual(a: Shape, b: Shape, ctx: Ctx): boolean {
  if (a.k === 'set' && a.items.length === 1) return shapeEqual(a.items[0]!, b, ctx);
  if (b.k === 'set' && b.items.length === 1) return shapeEqual(a, b.items[0]!, ctx);
  if (a.k === 'eq' && b.k !== 'eq') return isVariable(a.lhs) && shapeEqual(shapeOf(a.rhs), b, ctx);
  if (b.k === 'eq' && a.k !== 'eq') return isVariable(b.lhs) && shapeEqual(a, shapeOf(b.rhs), ctx);
  if (a.k !== b.k) return false;
  switch (a.k) {
    case 'scalar':
      return scalarEqual(a.s, (b as typeof a).s, ctx);
    case 'eq':
      return equationEqual(a, b as typeof a, ctx);
    case 'tuple': {
      const t = b as typeof a;
      return a.open === t.open && a.close === t.close && a.items.length === t.items.length && a.items.every((x, i) => shapeEqual(x, t.items[i]!, ctx));
    }
    case 'set':
    case 'union':
      return sameMultiset(a.items, (b as typeof a).items, ctx);
    case 'matrix': {
      const m = b as typeof a;
      return a.rows.length === m.rows.length && a.rows.every((r, i) => r.length === m.rows[i]!.length && r.every((c, j) => shapeEqual(c, m.rows[i]![j]!, ctx)));
    }
  }
}

/** A gold answer that is words (a name, a direction, a multiple-choice letter in \text{}). */
function isTextual(raw: string, norm: string): boolean {
  if (/\\text\{[^}]*[a-zA-Z]{2,}/.test(norm) || /\\text\{\(?[A-Z]\)?\}/.test(raw)) return true;
  return /[a-zA-Z]{3,}/.test(norm.replace(/\\[a-zA-Z]+/g, '')) && !/[0-9=^+*/]/.test(norm);
}

/** Is `pred` the same answer as `gold`? */
export function equivalent(pred: string, gold: string, opts: EquivOptions = {}): Verdict {
  // (some normalisation steps are regular expressions whose cost grows with the square of
  // the length: no final answer is this long, and none is compared)
  if (pred.length > MAX_RAW || gold.length > MAX_RAW) return { equal: false, reason: 'answer too long to compare' };
  const P = normalizeAnswer(pred);
  const G = normalizeAnswer(gold);
  if (P.text === '') return { equal: false, reason: 'empty answer' };
  if (G.text === '') return { equal: false, reason: 'empty reference answer' };
  if (P.text === G.text) return { equal: true, reason: 'equal after normalisation' };
  if (isTextual(gold, G.text) || isTextual(pred, P.text)) {
    const eq = plainText(P.text) === plainText(G.text) && plainText(G.text) !== '';
    return { equal: eq, reason: eq ? 'same text' : 'different text' };
  }
  if (P.text.length > MAX_LEN || G.text.length > MAX_LEN) return { equal: false, reason: 'answer too long to compare' };
  // a % on one side only: that side's number may also be read divided by 100 (pred is compared with gold * k)
  const scales = P.percent && !G.percent ? [1, 100] : G.percent && !P.percent ? [1, 0.01] : [1];
  const ctx: Ctx = { deadline: { until: Date.now() + (opts.timeoutMs ?? 1000) }, scales, how: '' };
  try {
    const eq = shapeEqual(shapeOf(P.text), shapeOf(G.text), ctx);
    return { equal: eq, reason: eq ? `equal (${ctx.how || 'structure'})` : 'not equal' };
  } catch (e) {
    if (e instanceof TimeLimit) return { equal: false, reason: `not equal: comparison exceeded its time limit (${opts.timeoutMs ?? 1000} ms)` };
    throw e;
  }
}

export { close };
