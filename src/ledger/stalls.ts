/**
 * Stalled detection (issue 14, docs/eta.md "Stalled detection"). The sweeper marks a running job
 * whose last progress (or, before any, its claim) is older than its type's `stall_after` with a
 * `stalled` history row (running → running) at the sweeper's clock: the simulator's clock in a
 * simulation, so the marks replay exactly. A job whose last row is already `stalled` is skipped,
 * so the mark fires once per silence; the next `progress` row clears it (projection.ts).
 * Heartbeats write no row: a heartbeat without progress does not count as progress.
 */
import { formatMicros, parseMicros } from '../util/time.js';
import { ts } from './rows.js';
import type { LedgerCore } from './jobs.js';
import * as v from './validate.js';
import { OkitError } from '../errors.js';
import { parseDuration } from '../util/duration.js';

/** Default stall_after, seconds. */
export const DEFAULT_STALL_AFTER_SECONDS = 60;

/** stall_after per job type, with a default: resolved and validated once (LedgerOptions.stallAfter). */
export interface StallConfig {
  defaultSeconds: number;
  byType: Readonly<Record<string, number>>;
}

export function stallConfig(input?: { defaultSeconds?: number; byType?: Record<string, number> }): StallConfig {
  const byType: Record<string, number> = {};
  for (const [type, s] of Object.entries(input?.byType ?? {})) byType[v.jobType(type, 'stall_after.type')] = v.int(s, `stall_after.${type}`, 1, 86_400);
  return { defaultSeconds: v.int(input?.defaultSeconds, 'stall_after', 1, 86_400, DEFAULT_STALL_AFTER_SECONDS), byType };
}

/**
 * `okit serve --stall-after`: a default and per-type values, comma-separated: `90s`,
 * `scan=5m,build=10m`, `2m,scan=30s` (durations as --telemetry-retention takes them, 1 s to 1 d).
 */
export function parseStallAfter(text: string): { defaultSeconds?: number; byType: Record<string, number> } {
  const out: { defaultSeconds?: number; byType: Record<string, number> } = { byType: {} };
  for (const part of String(text).split(',')) {
    const eq = part.indexOf('=');
    if (eq < 0) {
      if (out.defaultSeconds !== undefined) throw new OkitError('INVALID_INPUT', '--stall-after: at most one default (an entry without type=)', { field: 'stall_after' });
      out.defaultSeconds = parseDuration(part, '--stall-after');
    } else out.byType[v.jobType(part.slice(0, eq).trim(), 'stall_after.type')] = parseDuration(part.slice(eq + 1), `--stall-after ${part.slice(0, eq).trim()}`);
  }
  stallConfig(out);
  return out;
}

export function stallAfterOf(c: StallConfig, type: string): number {
  return c.byType[type] ?? c.defaultSeconds;
}

const SECOND = 1_000_000n;

/**
 * Marks the running jobs silent for longer than their stall_after; answers how many were marked.
 * One index walk of the running jobs (jobs_lease_idx is partial on state = 'running') joined to
 * each one's last row; a tenant's marks go to the writer together, like lease expiries.
 */
export async function markStalled(l: LedgerCore & { stall: StallConfig }, opts: { tenant?: string; limit?: number } = {}): Promise<number> {
  const now = l.clock.now();
  const minAfter = Math.min(l.stall.defaultSeconds, ...Object.values(l.stall.byType));
  // Each type's own cut-off in SQL, so that the LIMIT holds only due jobs: with the shortest
  // cut-off alone, a page of long-silent jobs of a patient type would hide the due ones behind it.
  const params: unknown[] = [formatMicros(now - BigInt(minAfter) * SECOND), opts.limit ?? 500, formatMicros(now), l.stall.defaultSeconds, JSON.stringify(l.stall.byType)];
  if (opts.tenant) params.push(v.tenant(opts.tenant));
  const { rows } = await l.pool.query(
    `SELECT j.id, j.tenant, j.type, j.history_n, h.at FROM okit.jobs j JOIN okit.job_history h ON h.job_id = j.id AND h.n = j.history_n
      WHERE j.state = 'running' AND h.event <> 'stalled' AND h.at < $1
        AND h.at < $3::timestamptz - make_interval(secs => COALESCE(($5::jsonb ->> j.type)::int, $4::int))
        ${opts.tenant ? 'AND j.tenant = $6' : ''}
      ORDER BY h.at, j.id LIMIT $2`,
    params,
  );
  const due = rows.filter((r) => now - parseMicros(ts(r.at)) > BigInt(stallAfterOf(l.stall, String(r.type))) * SECOND);
  const settled = await Promise.allSettled(
    due.map((r) =>
      l.writer.submit<boolean>(String(r.tenant), {
        weight: 1,
        async run(b) {
          const slot = await b.jobIfFree(String(r.id));
          // Moved since the query (progress, finished, another sweeper): nothing to mark.
          if (!slot || slot.job.state !== 'running' || slot.job.history_n !== Number(r.history_n)) return () => false;
          const stallAfter = stallAfterOf(l.stall, slot.job.type);
          b.transition(slot, 'stalled', 'running', { stall_after_seconds: stallAfter, last_progress_at: ts(r.at) }, now);
          return () => true;
        },
      }),
    ),
  );
  const failed = settled.find((s) => s.status === 'rejected');
  if (failed) throw (failed as PromiseRejectedResult).reason;
  return settled.filter((s) => s.status === 'fulfilled' && s.value).length;
}

