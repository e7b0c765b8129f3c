/**
 * `okit slo report`: time to first signal per surface and per kind over a window, against
 * each surface's targets (okit.ttfs_slo_targets), and the hours that breached
 * (okit.ttfs_slo_breaches). A surface breaches when its p50 or p95 over the window is above
 * its target; that is what the exit code gates on. Kind rows and breaching hours explain it.
 */
import type { Pool } from '../db/pool.js';
import type { Micros } from '../util/time.js';
import { formatMicros, normalizeTimestamp } from '../util/time.js';

export interface SloRow {
  surface: string;
  /** null: every kind of the surface; '-': events that showed no signal (timeouts, errors). */
  kind: string | null;
  events: number;
  p50_ms: number | null;
  p95_ms: number | null;
  p99_ms: number | null;
  over_p50: number;
  over_p95: number;
  timeouts: number;
  errors: number;
  server_events: number;
  server_p95_ms: number | null;
  p50_target_ms: number;
  p95_target_ms: number;
  /** Which targets this row misses: "p50", "p95". */
  breaches: string[];
}

export interface BreachHour {
  hour: string;
  tenant: string;
  surface: string;
  total_signals: number;
  p50_ms: number;
  p95_ms: number;
  p50_target_ms: number;
  p95_target_ms: number;
  p50_breaches: number;
  p95_breaches: number;
}

export interface SloReport {
  since: string;
  until: string;
  tenant: string | null;
  surface: string | null;
  rows: SloRow[];
  breaching_hours: BreachHour[];
  /** Surfaces whose window figures miss a target, e.g. "ci p95 6200 ms > 5000 ms". */
  breaches: string[];
  breached: boolean;
}

const num = (x: unknown): number | null => (x === null || x === undefined ? null : Number(x));

const MEASURED = `e.event_type IN ('signal.rendered', 'signal.timeout')`;
const pct = (p: number) => `round((percentile_cont(${p}) WITHIN GROUP (ORDER BY e.ttfs_ms) FILTER (WHERE ${MEASURED}))::numeric, 3)`;

export async function sloReport(pool: Pool, o: { since: Micros; until: Micros; tenant?: string | null; surface?: string | null }): Promise<SloReport> {
  const since = formatMicros(o.since);
  const until = formatMicros(o.until);
  const params: unknown[] = [since, until];
  let filter = '';
  if (o.tenant) filter += ` AND e.tenant = $${params.push(o.tenant)}`;
  if (o.surface) filter += ` AND e.surface = $${params.push(o.surface)}`;
  const { rows } = await pool.query(
    `SELECT e.surface, GROUPING(e.kind) AS all_kinds, coalesce(e.kind, '-') AS kind,
       count(*) FILTER (WHERE ${MEASURED}) AS events,
       ${pct(0.5)} AS p50_ms, ${pct(0.95)} AS p95_ms, ${pct(0.99)} AS p99_ms,
       count(*) FILTER (WHERE ${MEASURED} AND e.ttfs_ms > t.p50_ms) AS over_p50,
       count(*) FILTER (WHERE ${MEASURED} AND e.ttfs_ms > t.p95_ms) AS over_p95,
       count(*) FILTER (WHERE e.event_type = 'signal.timeout') AS timeouts,
       count(*) FILTER (WHERE e.event_type = 'signal.error') AS errors,
       count(*) FILTER (WHERE e.event_type IN ('signal.cache_hit', 'signal.cold_start')) AS server_events,
       round((percentile_cont(0.95) WITHIN GROUP (ORDER BY e.ttfs_ms) FILTER (WHERE e.event_type IN ('signal.cache_hit', 'signal.cold_start')))::numeric, 3) AS server_p95_ms,
       t.p50_ms AS p50_target_ms, t.p95_ms AS p95_target_ms
     FROM okit.ttfs_events e JOIN okit.ttfs_slo_targets t ON t.surface = e.surface
     WHERE e.ts >= $1 AND e.ts < $2${filter}
     GROUP BY GROUPING SETS ((e.surface, t.p50_ms, t.p95_ms), (e.surface, t.p50_ms, t.p95_ms, e.kind))
     ORDER BY e.surface, GROUPING(e.kind) DESC, coalesce(e.kind, '-')`,
    params,
  );
  const out: SloRow[] = rows.map((r) => {
    const row: SloRow = {
      surface: r.surface,
      kind: Number(r.all_kinds) === 1 ? null : r.kind,
      events: Number(r.events),
      p50_ms: num(r.p50_ms),
      p95_ms: num(r.p95_ms),
      p99_ms: num(r.p99_ms),
      over_p50: Number(r.over_p50),
      over_p95: Number(r.over_p95),
      timeouts: Number(r.timeouts),
      errors: Number(r.errors),
      server_events: Number(r.server_events),
      server_p95_ms: num(r.server_p95_ms),
      p50_target_ms: Number(r.p50_target_ms),
      p95_target_ms: Number(r.p95_target_ms),
      breaches: [],
    };
    if (row.p50_ms !== null && row.p50_ms > row.p50_target_ms) row.breaches.push('p50');
    if (row.p95_ms !== null && row.p95_ms > row.p95_target_ms) row.breaches.push('p95');
    return row;
  });

  const hp: unknown[] = [since, until];
  let hf = '';
  if (o.tenant) hf += ` AND tenant = $${hp.push(o.tenant)}`;
  if (o.surface) hf += ` AND surface = $${hp.push(o.surface)}`;
  const { rows: hours } = await pool.query(
    `SELECT hour, tenant, surface, total_signals, p50_ms, p95_ms, p50_target_ms, p95_target_ms, p50_breaches, p95_breaches
     FROM okit.ttfs_slo_breaches WHERE hour >= date_trunc('hour', $1::timestamptz, 'UTC') AND hour < $2${hf} ORDER BY hour, tenant, surface`,
    hp,
  );
  const breaching_hours: BreachHour[] = hours.map((h) => ({
    hour: normalizeTimestamp(h.hour),
    tenant: h.tenant,
    surface: h.surface,
    total_signals: Number(h.total_signals),
    p50_ms: Number(h.p50_ms),
    p95_ms: Number(h.p95_ms),
    p50_target_ms: Number(h.p50_target_ms),
    p95_target_ms: Number(h.p95_target_ms),
    p50_breaches: Number(h.p50_breaches),
    p95_breaches: Number(h.p95_breaches),
  }));

  const breaches: string[] = [];
  for (const r of out)
    if (r.kind === null)
      for (const b of r.breaches)
        breaches.push(`${r.surface} ${b} ${b === 'p50' ? r.p50_ms : r.p95_ms} ms > ${b === 'p50' ? r.p50_target_ms : r.p95_target_ms} ms`);
  return { since, until, tenant: o.tenant ?? null, surface: o.surface ?? null, rows: out, breaching_hours, breaches, breached: breaches.length > 0 };
}
