// One live status line on a terminal (rewritten in place), plain lines otherwise
// (logs, CI, pipes), and Ctrl-C turned into an AbortSignal: the first stops cleanly
// at the next step boundary, the second quits at once.

export class Progress {
  private live: boolean;
  private width = 0;
  constructor(private stream: NodeJS.WriteStream = process.stderr) {
    this.live = Boolean(stream.isTTY) && !process.env.CI;
  }
  /** The current state: rewritten in place on a terminal, a plain line elsewhere. */
  update(text: string): void {
    if (this.live) {
      const pad = Math.max(0, this.width - text.length);
      this.stream.write(`\r${text}${' '.repeat(pad)}`);
      this.width = text.length;
    } else this.stream.write(text + '\n');
  }
  /** A line that stays (ends the live line first). */
  log(text: string): void {
    if (this.live && this.width > 0) this.stream.write('\n');
    this.width = 0;
    this.stream.write(text + '\n');
  }
  done(): void {
    if (this.live && this.width > 0) this.stream.write('\n');
    this.width = 0;
  }
}

export function formatSeconds(s: number): string {
  if (!Number.isFinite(s)) return '?';
  if (s < 60) return `${s.toFixed(0)}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(Math.round(s % 60)).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.round((s % 3600) / 60)).padStart(2, '0')}m`;
}

/** An AbortSignal fired by the first Ctrl-C (SIGINT or SIGTERM); a second one exits at once (130). */
export function interruptSignal(onFirst: () => void): { signal: AbortSignal; dispose(): void } {
  const ac = new AbortController();
  const handler = () => {
    if (ac.signal.aborted) process.exit(130);
    ac.abort();
    onFirst();
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
  return {
    signal: ac.signal,
    dispose: () => {
      process.off('SIGINT', handler);
      process.off('SIGTERM', handler);
    },
  };
}
