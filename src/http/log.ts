/**
 * Log lines that a client can cause (malformed requests, timeouts, refused connections):
 * one line each, control characters escaped, at most `perWindow` per `windowMs`; what is
 * dropped is counted and reported in one line when the next window opens (or at close).
 */
export class RateLimitedLog {
  private windowStart = -Infinity;
  private count = 0;
  private suppressed = 0;
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly log: (line: string) => void,
    private readonly perWindow = 20,
    private readonly windowMs = 10_000,
    private readonly now: () => number = () => performance.now(),
  ) {}

  line(text: string): void {
    const t = this.now();
    if (t - this.windowStart >= this.windowMs) {
      this.flush();
      this.windowStart = t;
      this.count = 0;
    }
    if (this.count >= this.perWindow) {
      // Said when the window closes, even if nothing else is logged after it.
      if (this.suppressed++ === 0) {
        this.timer = setTimeout(() => this.flush(), Math.max(0, this.windowStart + this.windowMs - t));
        this.timer.unref();
      }
      return;
    }
    this.count++;
    this.log(oneLine(text));
  }

  /** Reports what was dropped so far. */
  flush(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (this.suppressed === 0) return;
    this.log(`${this.suppressed} similar line(s) suppressed (at most ${this.perWindow} per ${this.windowMs / 1000} s)`);
    this.suppressed = 0;
  }
}

/** One line, printable: what a client sent may hold CR, LF, ESC. At most `max` characters. */
export function oneLine(s: string, max = 300): string {
  const flat = s.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g, (c) => (c === '\n' || c === '\r' ? ' ' : `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`));
  return flat.length > max ? flat.slice(0, max) + '…' : flat;
}
