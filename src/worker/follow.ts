/**
 * Following a job's first signal the way `okit job status --watch` does: one line per new
 * signal, then the 2-second long-poll with If-None-Match until a terminal signal. An idle
 * follower costs at most one request per `waitSeconds`; an unreachable server or database
 * is retried with capped backoff (a watcher outlives a Postgres restart).
 */
import type { Signal } from '../ledger/types.js';
import { signalLine, TERMINAL_KINDS } from '../signals/projection.js';
import { terminalLine } from '../util/terminal.js';
import { isRetryable, type FirstSignal, type OkitClient } from './client.js';

export interface FollowOptions {
  watch: boolean;
  waitSeconds?: number;
  out: (line: string) => void;
  err?: (line: string) => void;
  /** Called for every new signal, right after its line is printed (the TTFS reporter, tests, the demo). */
  onSignal?: (s: Signal, etag: string, reply: Extract<FirstSignal, { status: 200 }>) => void;
  signal?: AbortSignal;
  retryMinMs?: number;
  retryMaxMs?: number;
}

export interface FollowResult {
  /** 0 succeeded (or not terminal yet without --watch), 1 failed or canceled. */
  exitCode: number;
  /** Milliseconds from the first request to the first signal shown. */
  ttfsMs: number | null;
  last: Signal | null;
  etag: string | null;
  requests: number;
}

export function exitCodeOf(s: Signal | null): number {
  return s && (s.kind === 'failed' || s.kind === 'canceled') ? 1 : 0;
}

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((r) => {
    const done = () => {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      r();
    };
    const t = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });

export async function followJob(client: OkitClient, jobId: string, o: FollowOptions): Promise<FollowResult> {
  const wait = o.waitSeconds ?? 2;
  const t0 = performance.now();
  let ttfsMs: number | null = null;
  let last: Signal | null = null;
  let etag: string | null = null;
  let requests = 0;
  let failures = 0;
  for (;;) {
    if (o.signal?.aborted) break;
    try {
      requests++;
      const r = await client.firstSignal(jobId, etag && o.watch ? { etag, wait, signal: o.signal } : { signal: o.signal });
      if (failures > 0) o.err?.('okit: reconnected');
      failures = 0;
      if (r.status === 200 && r.etag !== etag) {
        etag = r.etag;
        last = r.signal;
        ttfsMs ??= performance.now() - t0;
        // A worker wrote the summary: one line, no terminal control, whatever it holds.
        o.out(terminalLine(signalLine(r.signal)));
        o.onSignal?.(r.signal, r.etag, r);
      }
    } catch (e) {
      if (o.signal?.aborted) break;
      if (!o.watch || !isRetryable(e)) throw e;
      if (failures === 0) o.err?.(terminalLine(`okit: ${(e as Error).message}; retrying`));
      failures++;
      await sleep(Math.min(o.retryMaxMs ?? 2000, (o.retryMinMs ?? 200) * 2 ** Math.min(failures - 1, 8)), o.signal);
      continue;
    }
    if (!o.watch || (last && TERMINAL_KINDS.has(last.kind))) break;
  }
  return { exitCode: exitCodeOf(last), ttfsMs, last, etag, requests };
}
