// A small seeded mutator for the TypeScript loader property tests
// (test/fuzz/*.test.ts): byte-level edits of a file's text, and structural
// edits of its JSON (a value replaced by one of another type, keys dropped or
// renamed, elements duplicated) that keep the file parseable, so the loaders'
// field checks are what gets tested, not only JSON.parse.
//
// Bounds: FUZZ_TS_MS (milliseconds per property, default 3000) and the case
// counts given by each test; FUZZ_TS_SEED fixes the seed (printed on failure).

import { mulberry32 } from '../../lib/rl/random.js';

export type Rng = () => number; // uniform in [0, 1)

/** A seeded generator (the package's mulberry32). */
export const rng = (seed: number): Rng => mulberry32(seed);

export const below = (r: Rng, n: number): number => Math.floor(r() * n);
export const pick = <T>(r: Rng, xs: readonly T[]): T => xs[below(r, xs.length)]!;

export const budgetMs = (): number => Number(process.env.FUZZ_TS_MS ?? 3000);
export const baseSeed = (): number => Number(process.env.FUZZ_TS_SEED ?? 20261127);

const STRINGS = [
  '', ' ', 'x', '\n', '\r\n', '\u0000', '\ud800', '\udfff', '\u2028', 'é', '😀', '\\boxed{', '\\boxed{1}', '}', '{',
  '####', '#### 42', '<s>', '</s>', '<|endoftext|>', '{{', '{% for %}', '{{ messages }}', '__proto__', 'constructor',
  'toString', 'BPE', 'WordPiece', 'Unigram', 'ByteLevel', 'a'.repeat(10_000), '\\'.repeat(1000), '{'.repeat(2000),
];
const NUMBERS = [0, -0, 1, -1, 2, 3, 0.5, 255, 256, 65535, 2 ** 31, -(2 ** 31), 2 ** 53, 1e21, 1e308, -1e308, 5e-324, 1e6];

/** A random JSON value, shallow or nested. */
export function randomValue(r: Rng, depth = 0): unknown {
  switch (below(r, depth > 2 ? 5 : 8)) {
    case 0: return null;
    case 1: return r() < 0.5;
    case 2: return pick(r, NUMBERS);
    case 3: return pick(r, STRINGS);
    case 4: return below(r, 1000) - 10;
    case 5: return Array.from({ length: below(r, 4) }, () => randomValue(r, depth + 1));
    case 6: return Object.fromEntries(Array.from({ length: below(r, 4) }, (_, i) => [pick(r, ['content', 'type', 'id', 'k' + i]), randomValue(r, depth + 1)]));
    default: {
      let v: unknown = pick(r, NUMBERS);
      for (let i = below(r, 200); i > 0; i--) v = [v];
      return v;
    }
  }
}

type Container = Record<string, unknown> | unknown[];
const isContainer = (v: unknown): v is Container => v !== null && typeof v === 'object';

/** Every container in v (v itself included) with its depth. */
function containers(v: unknown, out: Container[] = [], depth = 0): Container[] {
  if (!isContainer(v) || depth > 40) return out;
  out.push(v);
  const kids = Array.isArray(v) ? v : Object.values(v);
  // Big containers (a 50k-entry vocab): sample a few children, not all.
  const step = Math.max(1, Math.floor(kids.length / 64));
  for (let i = 0; i < kids.length; i += step) containers(kids[i], out, depth + 1);
  return out;
}

/** Structural edits of a parsed JSON value, in place; returns the (possibly new) root. */
export function mutateJson(root: unknown, r: Rng, rounds = 1 + below(r, 3)): unknown {
  for (let k = 0; k < rounds; k++) {
    const all = containers(root);
    if (all.length === 0) return randomValue(r);
    // Prefer shallow containers a little: most checks are on top-level fields.
    const c = r() < 0.4 ? all[0]! : pick(r, all);
    const keys = Array.isArray(c) ? c.map((_, i) => i) : Object.keys(c);
    const op = below(r, 7);
    if (keys.length === 0 || op === 0) {
      // add an element / field
      if (Array.isArray(c)) c.splice(below(r, c.length + 1), 0, randomValue(r));
      else (c as Record<string, unknown>)[pick(r, [...keys, 'extra', 'model', 'type', 'vocab', 'merges'] as string[])] = randomValue(r);
      continue;
    }
    const key = pick(r, keys as (string | number)[]);
    const rec = c as Record<string | number, unknown>;
    switch (op) {
      case 1:
      case 2: rec[key] = randomValue(r); break; // replace a value
      case 3: // delete
        if (Array.isArray(c)) c.splice(key as number, 1);
        else delete rec[key];
        break;
      case 4: { // a value of another container's field (right type, wrong place)
        const other = pick(r, all);
        const ok = Array.isArray(other) ? other : Object.values(other);
        if (ok.length) rec[key] = structuredClone(pick(r, ok));
        break;
      }
      case 5: // rename a key / move an element
        if (Array.isArray(c)) c.push(c[key as number]);
        else {
          const v = rec[key];
          delete rec[key];
          rec[String(key) + pick(r, ['', '_', 'x', ' ']) + (r() < 0.5 ? '' : 'id')] = v;
        }
        break;
      default: // a string or number nudged
        if (typeof rec[key] === 'string') rec[key] = mutateText(rec[key] as string, r, 1);
        else if (typeof rec[key] === 'number') rec[key] = (rec[key] as number) + below(r, 5) - 2;
        else rec[key] = randomValue(r);
    }
  }
  return root;
}

/** Byte-ish edits of text: flips, inserts, deletes, duplicated or spliced slices, truncation. */
export function mutateText(s: string, r: Rng, rounds = 1 + below(r, 4), pool: readonly string[] = []): string {
  for (let k = 0; k < rounds; k++) {
    const n = s.length;
    const at = below(r, n + 1);
    switch (below(r, 9)) {
      case 0: s = s.slice(0, at) + String.fromCharCode(below(r, 256)) + s.slice(at + 1); break;
      case 1: s = s.slice(0, at) + pick(r, ['"', '{', '}', '[', ']', ',', ':', '\\', '\n', '\r', ' ', '0', '-', 'e', '\u0000', '\ufffd']) + s.slice(at); break;
      case 2: s = s.slice(0, at) + s.slice(at + 1 + below(r, 16)); break;
      case 3: { const m = below(r, 200); s = s.slice(0, at) + s.slice(at, at + m) + s.slice(at); break; }
      case 4: s = s.slice(0, at); break;
      case 5: if (pool.length) { const o = pick(r, pool); s = s.slice(0, at) + o.slice(below(r, o.length + 1)); } break;
      case 6: s = s.slice(0, at) + pick(r, STRINGS).slice(0, 50) + s.slice(at); break;
      case 7: { const m = /-?\d+(\.\d+)?([eE][-+]?\d+)?/g; const hits = [...s.matchAll(m)]; if (hits.length) { const h = pick(r, hits); s = s.slice(0, h.index) + String(pick(r, NUMBERS)) + s.slice(h.index! + h[0].length); } break; }
      default: { const b = Buffer.from(s, 'utf8'); if (b.length) { b[below(r, b.length)] ^= 1 << below(r, 8); s = b.toString('utf8'); } }
    }
  }
  return s;
}

/** A mutated jsonl text: whole lines dropped, duplicated or edited (structurally or as bytes). */
export function mutateJsonl(lines: readonly string[], r: Rng, pool: readonly string[] = []): string {
  const out = [...lines];
  for (let k = 1 + below(r, 3); k > 0; k--) {
    if (out.length === 0) { out.push(pick(r, ['', '{}', '[]', 'null', '"x"'])); continue; }
    const i = below(r, out.length);
    const op = below(r, 10);
    if (op < 5) {
      try {
        out[i] = JSON.stringify(mutateJson(JSON.parse(out[i]!), r));
      } catch {
        out[i] = mutateText(out[i]!, r);
      }
    } else if (op < 8) out[i] = mutateText(out[i]!, r, undefined, pool);
    else if (op === 8) out.splice(i, 1);
    else out.splice(i, 0, out[i]!);
  }
  return out.join(pick(r, ['\n', '\n', '\n', '\r\n'])) + (r() < 0.5 ? '\n' : '');
}

/** The one-line rule: a typed error with `code`, a single-line message naming `file`. */
export function checkTypedError(e: unknown, code: string, file: string): string | undefined {
  if (!(e instanceof Error)) return `threw a non-Error: ${String(e)}`;
  const c = (e as { code?: unknown }).code;
  if (c !== code) return `threw ${e.constructor.name} (code ${String(c)}), not ${code}: ${e.message.slice(0, 300)}`;
  if (/[\n\r]/.test(e.message)) return `message spans lines: ${JSON.stringify(e.message.slice(0, 300))}`;
  if (!e.message.includes(file)) return `message does not name ${file}: ${e.message.slice(0, 300)}`;
  if (e.message.length > 2000) return `message is ${e.message.length} characters long`;
  return undefined;
}
