/** Every error score-rl's API throws or rejects with carries a stable `code`. */
export class ScoreError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.name = 'ScoreError';
    this.code = code;
  }
}

/** Re-throws a native rejection (an Error with `code`) as a ScoreError. */
export function asScoreError(err: unknown): ScoreError {
  if (err instanceof ScoreError) return err;
  const e = err as { code?: string; message?: string };
  return new ScoreError(e?.code ?? 'ERR_SCORE_INTERNAL', e?.message ?? String(err));
}
