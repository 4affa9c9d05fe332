// The shape of an answer: a scalar, a tuple or interval (brackets matter), a set or
// an unordered list, a union of intervals, a matrix, or an equation.

export type Shape =
  | { k: 'scalar'; s: string }
  | { k: 'tuple'; open: string; close: string; items: Shape[] }
  | { k: 'set'; items: Shape[] }
  | { k: 'union'; items: Shape[] }
  | { k: 'matrix'; rows: Shape[][] }
  | { k: 'eq'; lhs: string; rhs: string };

/** Split at top-level occurrences of `sep` (brackets of any kind, braces and \{ \} nest). */
export function splitTop(s: string, sep: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let from = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (c === '\\') {
      if (s[i + 1] === '{' || s[i + 1] === '}') {
        depth += s[i + 1] === '{' ? 1 : -1;
        i++;
        continue;
      }
      if (depth === 0 && s.startsWith(sep, i) && sep.startsWith('\\') && !/[a-zA-Z]/.test(s[i + sep.length] ?? '')) {
        parts.push(s.slice(from, i));
        from = i + sep.length;
        i += sep.length - 1;
      }
      continue;
    }
    if ('([{'.includes(c)) depth++;
    else if (')]}'.includes(c)) depth--;
    else if (depth === 0 && c === sep) {
      parts.push(s.slice(from, i));
      from = i + 1;
    }
  }
  parts.push(s.slice(from));
  return parts;
}

/** Does the bracket opening at 0 close exactly at the end? */
function wraps(s: string): boolean {
  let depth = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if ('([{'.includes(c)) depth++;
    else if (')]}'.includes(c) && --depth === 0) return i === s.length - 1;
  }
  return false;
}

const MATRIX = /^\\begin\{([pbvB]?matrix|array)\}(?:\{[^{}]*\})?([\s\S]*)\\end\{\1\}$/;

/** `a \pm b` as the two values a + b and a - b. */
function expandPm(s: string): string[] {
  const parts = s.split('\\pm');
  if (parts.length !== 2 || parts[1] === '') return [s];
  const [a, b] = parts as [string, string];
  if (a === '') return [b, `-${b}`];
  return [`${a}+(${b})`, `${a}-(${b})`];
}

export function shapeOf(s: string): Shape {
  const union = splitTop(s, '\\cup');
  if (union.length > 1) return { k: 'union', items: union.map(shapeOf) };
  const mat = MATRIX.exec(s);
  if (mat) {
    const rows = mat[2]!.split('\\\\').filter((r) => r.trim() !== '');
    return { k: 'matrix', rows: rows.map((r) => r.split('&').map((c) => shapeOf(c.trim()))) };
  }
  if (s.startsWith('\\{') && s.endsWith('\\}')) {
    const inner = s.slice(2, -2);
    return { k: 'set', items: splitTop(inner, ',').flatMap(expandPm).map(shapeOf) };
  }
  if (/^[([]/.test(s) && /[)\]]$/.test(s) && wraps(s)) {
    const items = splitTop(s.slice(1, -1), ',');
    if (items.length > 1) return { k: 'tuple', open: s[0]!, close: s[s.length - 1]!, items: items.map(shapeOf) };
  }
  const list = splitTop(s, ',');
  if (list.length > 1) return { k: 'set', items: list.flatMap(expandPm).map(shapeOf) };
  const pm = expandPm(s);
  if (pm.length > 1) return { k: 'set', items: pm.map(shapeOf) };
  const eq = splitTop(s, '=');
  if (eq.length === 2 && eq[0] !== '' && eq[1] !== '') return { k: 'eq', lhs: eq[0]!, rhs: eq[1]! };
  return { k: 'scalar', s };
}
