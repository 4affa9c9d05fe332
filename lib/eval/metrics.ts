// Two-attempt metrics from per-problem outcomes, with 95% intervals.
// All are fractions of all problems: Delta = Acc@t2 - Acc@t1 = i->c - c->i.

export interface Estimate {
  value: number;
  /** 95% interval */
  ci95: [number, number];
}

export interface TwoAttemptMetrics {
  n: number;
  accT1: Estimate;
  accT2: Estimate;
  delta: Estimate;
  deltaI2C: Estimate;
  deltaC2I: Estimate;
  counts: { rightRight: number; wrongRight: number; rightWrong: number; wrongWrong: number };
}

const Z95 = 1.959963984540054;

/** Wilson score interval of a proportion k/n: it stays inside [0, 1] and behaves at k = 0 or n. */
export function wilson(k: number, n: number): Estimate {
  if (n === 0) return { value: NaN, ci95: [NaN, NaN] };
  const p = k / n, z2 = Z95 * Z95;
  const centre = (p + z2 / (2 * n)) / (1 + z2 / n);
  const half = (Z95 / (1 + z2 / n)) * Math.sqrt((p * (1 - p)) / n + z2 / (4 * n * n));
  // exact at the edges (k = 0 or n), where rounding would leave 1 - 1e-16
  return { value: p, ci95: [k === 0 ? 0 : Math.max(0, centre - half), k === n ? 1 : Math.min(1, centre + half)] };
}

/** Difference of two paired proportions, (b - c) / n, where b problems went wrong->right and
 * c right->wrong (McNemar's setting): Wald interval with the paired variance
 * ((b + c) - (b - c)^2 / n) / n^2. At the sizes evaluated here (n >= a few hundred) it is
 * close to the exact-score intervals. */
export function pairedDifference(b: number, c: number, n: number): Estimate {
  if (n === 0) return { value: NaN, ci95: [NaN, NaN] };
  const d = (b - c) / n;
  const v = Math.max(0, (b + c - ((b - c) * (b - c)) / n) / (n * n));
  const half = Z95 * Math.sqrt(v);
  return { value: d, ci95: [Math.max(-1, d - half), Math.min(1, d + half)] };
}

export function twoAttemptMetrics(outcomes: readonly { c1: boolean; c2: boolean }[]): TwoAttemptMetrics {
  const counts = { rightRight: 0, wrongRight: 0, rightWrong: 0, wrongWrong: 0 };
  for (const o of outcomes) {
    if (o.c1 && o.c2) counts.rightRight++;
    else if (!o.c1 && o.c2) counts.wrongRight++;
    else if (o.c1 && !o.c2) counts.rightWrong++;
    else counts.wrongWrong++;
  }
  const n = outcomes.length;
  const t1 = counts.rightRight + counts.rightWrong, t2 = counts.rightRight + counts.wrongRight;
  return {
    n,
    accT1: wilson(t1, n),
    accT2: wilson(t2, n),
    delta: pairedDifference(counts.wrongRight, counts.rightWrong, n),
    deltaI2C: wilson(counts.wrongRight, n),
    deltaC2I: wilson(counts.rightWrong, n),
    counts,
  };
}

/** Levenshtein distance between token sequences, over the longer length: 0 = the same
 * attempt, 1 = nothing in common. Low values mean the second attempt copies the first
 * (the paper's collapse diagnostic). */
export function editRatio(a: readonly number[], b: readonly number[]): number {
  const m = a.length, n = b.length;
  if (m === 0 && n === 0) return 0;
  let prev = new Int32Array(n + 1), cur = new Int32Array(n + 1);
  for (let j = 0; j <= n; j++) prev[j] = j;
  for (let i = 1; i <= m; i++) {
    cur[0] = i;
    const ai = a[i - 1];
    for (let j = 1; j <= n; j++) cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (ai === b[j - 1] ? 0 : 1));
    [prev, cur] = [cur, prev];
  }
  return prev[n]! / Math.max(m, n);
}
