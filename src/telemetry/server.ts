/**
 * The server's side of TTFS telemetry: every first-signal answer goes to the metrics; the
 * answer to a surface's first request (one that declared itself with `X-Okit-Surface` and
 * held no ETag yet) is also queued as a row of its own (signal.cache_hit / signal.cold_start);
 * reports POSTed by surfaces are checked against the tenant's jobs, stamped and queued.
 * Nothing here waits for the database on the hot path.
 */
import type { IncomingMessage } from 'node:http';
import { OkitError } from '../errors.js';
import type { Pool } from '../db/pool.js';
import type { AnswerSurface, OkitMetrics } from '../metrics/metrics.js';
import type { Current } from '../signals/store.js';
import { systemClock, type Clock } from '../util/clock.js';
import { formatMicros } from '../util/time.js';
import { isSurface, type ClientEvent, type TtfsEvent } from './events.js';
import type { TelemetryQueue } from './queue.js';

export const SURFACE_HEADER = 'x-okit-surface';

/** The surface a request declared, or `api` for one that did not (or sent something else). */
export function surfaceOf(req: IncomingMessage): AnswerSurface {
  const h = req.headers[SURFACE_HEADER];
  return isSurface(h) ? h : 'api';
}

/** `Server-Timing` for a surface that asked: its report can then tell the server's part from the rest. */
export function serverTiming(ms: number, cacheHit: boolean): string {
  return `okit;dur=${ms.toFixed(3)};desc="${cacheHit ? 'cache hit' : 'cache miss'}"`;
}

export class ServerTelemetry {
  constructor(
    readonly metrics: OkitMetrics,
    readonly queue: TelemetryQueue,
    private readonly pool: Pool,
    private readonly clock: Clock = systemClock,
  ) {}

  /**
   * One first-signal answer: `cur` the signal answered, `first` the client held no ETag (so
   * this is its first signal); the rest as OkitMetrics.answer. Positional, so the hot path
   * allocates nothing here unless a row is queued.
   */
  answer(tenant: string, surface: AnswerSurface, cur: Current, cacheHit: boolean, serverMs: number, sentSignal: boolean, immediate: boolean, first: boolean): void {
    const snap = cur.snapshot;
    this.metrics.answer(cur, tenant, surface, cur.source, snap.kind, cacheHit, serverMs, sentSignal, immediate);
    if (!first || !immediate || surface === 'api' || this.queue.dropIfFull()) return;
    this.queue.push([
      {
        ts: formatMicros(this.clock.now()),
        tenant,
        job_id: snap.job_id,
        run_id: snap.run_id,
        surface,
        event_type: cacheHit ? 'signal.cache_hit' : 'signal.cold_start',
        ttfs_ms: Math.round(serverMs * 1000) / 1000,
        server_ms: null,
        cache_hit: cacheHit,
        signal_source: cur.source,
        kind: snap.kind,
        phase: snap.phase,
        error_code: null,
      },
    ]);
  }

  answerError(surface: AnswerSurface, tenant: string | null, code: string): void {
    this.metrics.answerError(surface, tenant, code);
  }

  /**
   * A surface's batch: every job must be the tenant's (else 404 for the batch, as if absent)
   * and a given run_id must be the job's run (else 400); nothing is queued unless all pass.
   */
  async report(tenant: string, events: readonly ClientEvent[]): Promise<{ accepted: number; dropped: number }> {
    const ids = [...new Set(events.map((e) => e.job_id))];
    const { rows } = await this.pool.query('SELECT id, run_id FROM okit.jobs WHERE tenant = $1 AND id = ANY($2::uuid[])', [tenant, ids]);
    const runs = new Map<string, string | null>(rows.map((r) => [String(r.id), r.run_id === null ? null : String(r.run_id)]));
    const missing = ids.find((id) => !runs.has(id));
    if (missing) throw new OkitError('JOB_NOT_FOUND', `job ${missing} not found`, { job_id: missing });
    const ts = formatMicros(this.clock.now());
    const stamped: TtfsEvent[] = events.map((e, i) => {
      const run = runs.get(e.job_id) ?? null;
      if (e.run_id !== null && e.run_id !== run)
        throw new OkitError('INVALID_INPUT', `events[${i}].run_id: job ${e.job_id} is ${run ? `in run ${run}` : 'in no run'}`, { field: `events[${i}].run_id` });
      return { ...e, ts, tenant, run_id: run };
    });
    this.metrics.reported(stamped);
    return this.queue.push(stamped);
  }
}
