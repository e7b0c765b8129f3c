/**
 * Open multiplexed streams, counted per principal (a console session or a bearer token) and
 * server-wide (issue 16 review): each stream holds waiters and re-reads the database on every
 * wake, so without a cap one read session could open hundreds and crowd the shared pool.
 * Past either cap a new stream is 429 TOO_MANY_STREAMS with Retry-After; open ones are untouched.
 */
import { OkitError } from '../errors.js';

/** Streams one session or token may hold open at once. */
export const DEFAULT_STREAMS_PER_PRINCIPAL = 4;
/** Streams this server holds open at once, all tenants together. */
export const DEFAULT_MAX_STREAMS = 200;
export const STREAMS_RETRY_AFTER_SECONDS = 5;
/** Per-job SSE streams (/stream/jobs/{id}/first-signal) one session or token may hold open at once. */
export const DEFAULT_JOB_STREAMS_PER_PRINCIPAL = 64;
/** Per-job SSE streams this server holds open at once. */
export const DEFAULT_MAX_JOB_STREAMS = 5000;

export class StreamSlots {
  private readonly by = new Map<string, number>();
  private open = 0;
  constructor(
    readonly perPrincipal: number = DEFAULT_STREAMS_PER_PRINCIPAL,
    readonly total: number = DEFAULT_MAX_STREAMS,
    /** What to tell a client past the per-principal cap. */
    private readonly hint = 'one stream follows up to 500 jobs',
  ) {}

  get size(): number {
    return this.open;
  }

  /** Takes a slot for `key` or throws TOO_MANY_STREAMS; the returned function gives it back (once). */
  acquire(key: string): () => void {
    const mine = this.by.get(key) ?? 0;
    const details = { retry_after_seconds: STREAMS_RETRY_AFTER_SECONDS };
    if (mine >= this.perPrincipal)
      throw new OkitError('TOO_MANY_STREAMS', `at most ${this.perPrincipal} open streams per session or token; close one (${this.hint})`, { ...details, limit: this.perPrincipal });
    if (this.open >= this.total) throw new OkitError('TOO_MANY_STREAMS', `this server holds its maximum of ${this.total} open streams; retry shortly`, { ...details, limit: this.total });
    this.by.set(key, mine + 1);
    this.open++;
    let done = false;
    return () => {
      if (done) return;
      done = true;
      this.open--;
      const n = (this.by.get(key) ?? 1) - 1;
      if (n <= 0) this.by.delete(key);
      else this.by.set(key, n);
    };
  }
}
