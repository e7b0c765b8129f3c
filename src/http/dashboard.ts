/**
 * GET /api/v1/orchestrator/console/dashboard: what the console's overview shows, in one
 * read-only, tenant-scoped answer: queue depth by type and state, paused types, throttled
 * hosts (bucket fill and penalty), dead letters by type, and TTFS p50/p95 per surface against
 * its SLO over the last 24 hours with an hourly p95 series for a small chart.
 * The window is the database's clock (a view for people, never exported bytes).
 */
import type { Ledger } from '../ledger/ledger.js';
import type { Router, Ctx } from './router.js';
import { sendJson } from './send.js';
import type { Scope } from './tokens.js';
import { OkitError } from '../errors.js';

type Authed = (need: Scope, fn: (ctx: Ctx, tenant: string, actor: string) => Promise<void>) => (ctx: Ctx) => Promise<void>;

const num = (x: unknown): number | null => (x === null || x === undefined ? null : Number(x));

const MEASURED = `e.event_type IN ('signal.rendered', 'signal.timeout')`;

export async function dashboard(ledger: Ledger, tenant: string) {
  const pool = ledger.pool;
  const [depth, queues, throttles, ttfs, hourly] = await Promise.all([
    pool.query<{ type: string; state: string; n: string }>(
      `SELECT type, state, count(*) AS n FROM okit.jobs WHERE tenant = $1 GROUP BY type, state ORDER BY type, state`,
      [tenant],
    ),
    ledger.listQueues(tenant),
    ledger.listThrottles(tenant),
    pool.query<{ surface: string; events: string; p50_ms: string | null; p95_ms: string | null; p50_target_ms: string; p95_target_ms: string }>(
      `SELECT t.surface, count(e.id) FILTER (WHERE ${MEASURED}) AS events,
              round((percentile_cont(0.5) WITHIN GROUP (ORDER BY e.ttfs_ms) FILTER (WHERE ${MEASURED}))::numeric, 3) AS p50_ms,
              round((percentile_cont(0.95) WITHIN GROUP (ORDER BY e.ttfs_ms) FILTER (WHERE ${MEASURED}))::numeric, 3) AS p95_ms,
              t.p50_ms AS p50_target_ms, t.p95_ms AS p95_target_ms
         FROM okit.ttfs_slo_targets t
         LEFT JOIN okit.ttfs_events e ON e.surface = t.surface AND e.tenant = $1 AND e.ts >= now() - interval '24 hours'
        GROUP BY t.surface, t.p50_ms, t.p95_ms ORDER BY t.surface`,
      [tenant],
    ),
    pool.query<{ surface: string; hour: string; p95_ms: string | null }>(
      `SELECT e.surface, to_char(date_trunc('hour', e.ts AT TIME ZONE 'UTC'), 'YYYY-MM-DD"T"HH24":00:00Z"') AS hour,
              round((percentile_cont(0.95) WITHIN GROUP (ORDER BY e.ttfs_ms))::numeric, 3) AS p95_ms
         FROM okit.ttfs_events e
        WHERE e.tenant = $1 AND e.ts >= now() - interval '24 hours' AND ${MEASURED}
        GROUP BY 1, 2 ORDER BY 1, 2`,
      [tenant],
    ),
  ]);
  const byType = new Map<string, Record<string, number>>();
  for (const r of depth.rows) {
    const t = byType.get(r.type) ?? {};
    t[r.state] = Number(r.n);
    byType.set(r.type, t);
  }
  const dead = [...byType].filter(([, s]) => (s.dead_letter ?? 0) > 0).map(([type, s]) => ({ type, count: s.dead_letter! }));
  return {
    queues: [...byType].map(([type, states]) => ({ type, states })),
    paused: queues.filter((q) => q.paused).map((q) => ({ type: q.type, paused: q.paused })),
    throttles,
    dead_letters: dead,
    ttfs: ttfs.rows.map((r) => ({
      surface: r.surface,
      events: Number(r.events),
      p50_ms: num(r.p50_ms),
      p95_ms: num(r.p95_ms),
      p50_target_ms: Number(r.p50_target_ms),
      p95_target_ms: Number(r.p95_target_ms),
      hourly_p95: hourly.rows.filter((h) => h.surface === r.surface).map((h) => ({ hour: h.hour, p95_ms: num(h.p95_ms) })),
    })),
  };
}

export function addDashboardRoute(r: Router, API: string, ledger: Ledger, authed: Authed): void {
  r.add(
    'GET',
    `${API}/console/dashboard`,
    authed('read', async (ctx, t) => {
      for (const k of ctx.query.keys()) throw new OkitError('INVALID_INPUT', `${k}: unknown parameter (the dashboard takes none)`, { field: k });
      sendJson(ctx.res, 200, await dashboard(ledger, t), { 'Cache-Control': 'no-store' });
    }),
  );
}
