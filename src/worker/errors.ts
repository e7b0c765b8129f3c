/**
 * What a handler throws to say how its job failed. A RetryableError is a retryable fail (the
 * job is tried again after its backoff, while attempts are left); any other error is a terminal
 * fail with the error's `code` (when it is a valid code) or HANDLER_ERROR. An error with
 * `upstream` (an UpstreamError, or any error carrying that field) also reports the upstream's
 * throttle: the host's bucket is penalised and the retry waits at least its Retry-After, in one call.
 */

/** An upstream's throttling answer: its HTTP status and Retry-After (seconds), and its host (default: the job's source host). */
export interface Upstream {
  status: number;
  retryAfterSeconds?: number;
  host?: string;
}

export class RetryableError extends Error {
  readonly code: string;
  readonly retryable = true;
  constructor(message: string, opts: { code?: string; cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'RetryableError';
    this.code = opts.code ?? 'RETRYABLE';
  }
}

/** The upstream throttled us (a 429 or 503): retry, and slow that host's bucket. */
export class UpstreamError extends RetryableError {
  readonly upstream: Upstream;
  constructor(message: string, upstream: Upstream, opts: { code?: string; cause?: unknown } = {}) {
    super(message, { code: opts.code ?? `UPSTREAM_${upstream.status}`, cause: opts.cause });
    this.name = 'UpstreamError';
    this.upstream = upstream;
  }
}

/**
 * Retry-After as seconds: delta-seconds or an HTTP date (RFC 9110 §10.2.3), relative to `nowMs`;
 * undefined when absent or unreadable.
 */
export function retryAfterSeconds(header: string | null | undefined, nowMs = Date.now()): number | undefined {
  if (!header) return undefined;
  const h = header.trim();
  if (/^[0-9]{1,10}$/.test(h)) return Math.min(Number(h), 86400);
  const t = Date.parse(h);
  if (Number.isNaN(t)) return undefined;
  return Math.min(86400, Math.max(0, Math.ceil((t - nowMs) / 1000)));
}
