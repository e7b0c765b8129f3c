/**
 * A command-line surface's TTFS report: `okit job status` and `okit run status`.
 * The time runs from the user's action (the command started: `startedAt`, a performance.now()
 * value, 0 for the process start) to the first signal printed. The report goes to the server
 * in the background as soon as the signal is shown and is awaited, briefly, before the command
 * exits; telemetry never fails or slows a command beyond that (errors are only shown with
 * --verbose).
 */
import { isOkitError } from '../errors.js';
import type { FirstSignal, OkitClient, TtfsReport } from '../worker/client.js';
import type { CliSurface } from './surface.js';

export interface ReporterOptions {
  surface: CliSurface;
  /** performance.now() at the user's action. */
  startedAt: number;
  verbose?: boolean;
  err?: (line: string) => void;
  /** How long the report may take before the command gives up on it (default 2000 ms). */
  timeoutMs?: number;
  now?: () => number;
}

/** Errors whose report would be refused too (no such job, no access) or cannot reach the server. */
const UNREPORTABLE = new Set(['JOB_NOT_FOUND', 'NOT_FOUND', 'UNAUTHORIZED', 'FORBIDDEN', 'INVALID_INPUT', 'SERVER_UNREACHABLE']);

export class TtfsReporter {
  private sending: Promise<void> | null = null;
  private reported = false;
  /** The figure reported, once a first signal was shown. */
  ttfsMs: number | null = null;

  constructor(
    private readonly client: OkitClient,
    private readonly o: ReporterOptions,
  ) {}

  private now(): number {
    return (this.o.now ?? (() => performance.now()))();
  }

  /** Call right after the first signal is shown; later calls are ignored. A run's signal names one of its jobs and the run. */
  firstSignal(jobId: string, reply: Extract<FirstSignal, { status: 200 }>, runId?: string): void {
    if (this.reported) return;
    this.reported = true;
    const ms = Math.max(0, this.now() - this.o.startedAt);
    this.ttfsMs = ms;
    const ev: TtfsReport = {
      surface: this.o.surface,
      event_type: 'signal.rendered',
      ttfs_ms: Math.round(ms * 1000) / 1000,
      job_id: jobId,
      kind: reply.signal.kind,
      phase: reply.signal.phase,
    };
    if (runId) ev.run_id = runId;
    if (reply.source === 'snapshot' || reply.source === 'cold_start' || reply.source === 'failure_index') ev.signal_source = reply.source;
    if (reply.serverMs !== null) ev.server_ms = reply.serverMs;
    if (reply.cacheHit !== null) ev.cache_hit = reply.cacheHit;
    if (this.o.verbose) {
      const part = [this.o.surface, reply.serverMs !== null ? `server ${reply.serverMs.toFixed(2)} ms` : null, reply.cacheHit === null ? null : reply.cacheHit ? 'cache hit' : 'cache miss', reply.source || null];
      this.o.err?.(`okit: time to first signal ${ms.toFixed(1)} ms (${part.filter(Boolean).join(', ')})`);
    }
    this.send(ev);
  }

  /** Call when the command ends in an error before any signal was shown. */
  error(jobId: string, e: unknown): void {
    if (this.reported) return;
    const code = isOkitError(e) ? e.code : 'INTERNAL';
    if (UNREPORTABLE.has(code)) return;
    this.reported = true;
    const ms = Math.max(0, this.now() - this.o.startedAt);
    this.send({ surface: this.o.surface, event_type: code === 'TIMEOUT' ? 'signal.timeout' : 'signal.error', ttfs_ms: Math.round(ms * 1000) / 1000, job_id: jobId, error_code: code });
  }

  private send(ev: TtfsReport): void {
    const timeoutMs = this.o.timeoutMs ?? 2000;
    this.sending = this.client.reportTtfs([ev], { timeoutMs }).then(
      () => undefined,
      (e: unknown) => {
        if (this.o.verbose) this.o.err?.(`okit: time to first signal not reported: ${(e as Error).message}`);
      },
    );
  }

  /** Waits for the report in flight, if any (bounded by its timeout). */
  async flush(): Promise<void> {
    await this.sending;
  }
}
