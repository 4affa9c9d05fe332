// Numeric evaluation of parsed answers, and the comparisons built on it: exact
// rationals for plain numbers, doubles with a tight tolerance for constant
// expressions, and agreement at seeded random points for expressions with variables.
import { checkDeadline, type Deadline, type Node } from './parse.js';

export function variables(n: Node, out = new Set<string>()): Set<string> {
  switch (n.k) {
    case 'var':
      out.add(n.name);
      break;
    case 'neg':
    case 'fact':
      variables(n.a, out);
      break;
    case 'fn':
      variables(n.a, out);
      if (n.base) variables(n.base, out);
      break;
    case 'bin':
    case 'binom':
      variables(n.a, out);
      variables(n.b, out);
      break;
  }
  return out;
}

function factorial(x: number): number {
  if (!Number.isInteger(x) || x < 0) return NaN;
  if (x > 170) return Infinity;
  let r = 1;
  for (let i = 2; i <= x; i++) r *= i;
  return r;
}

function binom(n: number, k: number): number {
  if (!Number.isInteger(n) || !Number.isInteger(k) || k < 0 || n < 0) return NaN;
  if (k > n) return 0;
  k = Math.min(k, n - k);
  if (k > 1000) return NaN;
  let r = 1;
  for (let i = 1; i <= k; i++) r = (r * (n - k + i)) / i;
  return Math.round(r);
}

const FN: Record<string, (x: number) => number> = {
  sin: Math.sin, cos: Math.cos, tan: Math.tan, sec: (x) => 1 / Math.cos(x), csc: (x) => 1 / Math.sin(x), cot: (x) => 1 / Math.tan(x),
  arcsin: Math.asin, arccos: Math.acos, arctan: Math.atan, sinh: Math.sinh, cosh: Math.cosh, tanh: Math.tanh,
  ln: Math.log, log: Math.log10, exp: Math.exp, sqrt: Math.sqrt, abs: Math.abs,
};

export function evaluate(n: Node, env: Map<string, number>): number {
  switch (n.k) {
    case 'num':
      return n.v;
    case 'var':
      return env.get(n.name) ?? NaN;
    case 'const':
      return n.name === 'pi' ? Math.PI : Infinity;
    case 'neg':
      return -evaluate(n.a, env);
    case 'fact':
      return factorial(evaluate(n.a, env));
    case 'binom':
      return binom(evaluate(n.a, env), evaluate(n.b, env));
    case 'fn': {
      const x = evaluate(n.a, env);
      if (n.base) return Math.log(x) / Math.log(evaluate(n.base, env));
      return FN[n.name]!(x);
    }
    case 'bin': {
      const a = evaluate(n.a, env);
      const b = evaluate(n.b, env);
      switch (n.op) {
        case '+':
          return a + b;
        case '-':
          return a - b;
        case '*':
          return a * b;
        case '/':
          return a / b;
        case '^':
          return Math.pow(a, b);
      }
    }
  }
}

const REL = 1e-9;
const ABS = 1e-12;
export function close(a: number, b: number): boolean {
  if (a === b) return true; // also equal infinities
  if (!Number.isFinite(a) || !Number.isFinite(b)) return false;
  return Math.abs(a - b) <= ABS + REL * Math.max(Math.abs(a), Math.abs(b));
}

/** Plain numbers as exact rationals: 12, -3.25, 1/4, \frac{-3}{4}. */
export function exactRational(s: string): [bigint, bigint] | undefined {
  let m = /^(-?)(\d+)(?:\.(\d+))?$/.exec(s);
  if (m) {
    const frac = m[3] ?? '';
    const num = BigInt(m[2]! + frac) * (m[1] ? -1n : 1n);
    return [num, 10n ** BigInt(frac.length)];
  }
  m = /^(-?)(?:\\frac\{(-?\d+)\}\{(-?\d+)\}|(-?\d+)\/(-?\d+))$/.exec(s);
  if (m) {
    const num = BigInt(m[2] ?? m[4]!) * (m[1] ? -1n : 1n);
    const den = BigInt(m[3] ?? m[5]!);
    if (den === 0n) return undefined;
    return [num, den];
  }
  return undefined;
}
export function rationalEqual(a: [bigint, bigint], b: [bigint, bigint]): boolean {
  return a[0] * b[1] === b[0] * a[1];
}

const MAX_BITS = 4096n;

/** Exact value of an integer-only expression (+ - * and powers with small non-negative
 * exponents), so that 2^{100} and 2^{100}+1 are told apart; undefined otherwise. */
export function exactInteger(n: Node): bigint | undefined {
  switch (n.k) {
    case 'num':
      return /^\d+$/.test(n.text) ? BigInt(n.text) : undefined;
    case 'neg': {
      const a = exactInteger(n.a);
      return a === undefined ? undefined : -a;
    }
    case 'bin': {
      if (n.op === '/') return undefined;
      const a = exactInteger(n.a);
      const b = exactInteger(n.b);
      if (a === undefined || b === undefined) return undefined;
      if (n.op === '+') return a + b;
      if (n.op === '-') return a - b;
      if (n.op === '*') return a * b;
      if (b < 0n) return undefined;
      const bits = BigInt(a < 0n ? (-a).toString(2).length : a.toString(2).length);
      if (bits * b > MAX_BITS) return undefined;
      return a ** b;
    }
    default:
      return undefined;
  }
}

/** Seeded points (mulberry32) so that a grade never depends on chance. Values lie in
 * [0.3, 2.9], or with `signed` in [-2.9, -0.3] or [0.3, 2.9] with a random sign each. */
function points(names: string[], count: number, signed = false): Map<string, number>[] {
  let seed = signed ? 0x5c0f : 0x5c0e;
  const rand = () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const out: Map<string, number>[] = [];
  for (let p = 0; p < count; p++)
    out.push(
      new Map(
        names.map((n) => {
          const v = 0.3 + 2.6 * rand();
          return [n, signed && rand() < 0.5 ? -v : v];
        }),
      ),
    );
  return out;
}

const POINTS = 8;
const MIN_VALID = 5;

/** a == b as functions of their variables (a constant expression has none).
 * `scale` multiplies b first (for percentages). */
export function sameValue(a: Node, b: Node, deadline: Deadline, scale = 1): boolean {
  const names = [...new Set([...variables(a), ...variables(b)])].sort();
  if (names.length === 0) return close(evaluate(a, new Map()), scale * evaluate(b, new Map()));
  let valid = 0;
  for (const env of points(names, POINTS)) {
    checkDeadline(deadline);
    const x = evaluate(a, env);
    const y = scale * evaluate(b, env);
    if (!Number.isFinite(x) || !Number.isFinite(y)) continue;
    if (!close(x, y)) return false;
    valid++;
  }
  if (valid < MIN_VALID) return false;
  // Positive points alone cannot tell |x| or \sqrt{x^2} from x: at points with negative
  // values, wherever both sides are defined they must agree too.
  for (const env of points(names, POINTS, true)) {
    checkDeadline(deadline);
    const x = evaluate(a, env);
    const y = scale * evaluate(b, env);
    if (Number.isFinite(x) && Number.isFinite(y) && !close(x, y)) return false;
  }
  return true;
}

/** f == c * g for one nonzero constant c (equations lhs - rhs = 0 that have the same solutions). */
export function proportional(f: Node, g: Node, deadline: Deadline): boolean {
  const names = [...new Set([...variables(f), ...variables(g)])].sort();
  if (names.length === 0) return false;
  let ratio: number | undefined;
  let valid = 0;
  // Positive points fix the ratio; then, at points with negative values, wherever both sides
  // are defined, the ratio must be the same (|x| = 1 is not x = 1).
  const envs = [...points(names, POINTS), ...points(names, POINTS, true)];
  for (let i = 0; i < envs.length; i++) {
    if (i === POINTS && (valid < MIN_VALID || ratio === undefined)) return false;
    checkDeadline(deadline);
    const x = evaluate(f, envs[i]!);
    const y = evaluate(g, envs[i]!);
    if (!Number.isFinite(x) || !Number.isFinite(y)) continue;
    if (Math.abs(y) < 1e-9 || Math.abs(x) < 1e-9) {
      if (!close(x, 0) || !close(y, 0)) return false;
      continue;
    }
    const r = x / y;
    if (ratio === undefined) ratio = r;
    else if (!close(r, ratio)) return false;
    if (i < POINTS) valid++;
  }
  return valid >= MIN_VALID && ratio !== undefined;
}
