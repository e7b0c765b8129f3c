/**
 * The SLO views and `okit slo report` on seeded telemetry, checked against percentiles
 * computed here independently; retention prunes telemetry and nothing else.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Ledger } from '../../src/ledger/ledger.js';
import { pruneTelemetry } from '../../src/telemetry/prune.js';
import { sloReport } from '../../src/telemetry/slo.js';
import { formatReport } from '../../src/cli/slo.js';
import { parseMicros } from '../../src/util/time.js';
import { okit } from '../helpers/cli.js';
import { freshDb, type TestDb } from '../helpers/db.js';
import { startTestServer } from '../helpers/serve.js';

/** percentile_cont: linear interpolation between closest ranks. */
function pc(values: number[], p: number): number {
  const s = [...values].sort((a, b) => a - b);
  const r = p * (s.length - 1);
  const lo = Math.floor(r);
  const hi = Math.ceil(r);
  return Math.round((s[lo]! + (s[hi]! - s[lo]!) * (r - lo)) * 1000) / 1000;
}

const JOB = '550e8400-e29b-41d4-a716-446655440000';
const H1 = '2025-12-04T10:00:00.000000Z';
type Row = [ts: string, tenant: string, surface: string, type: string, ms: number, kind: string | null, cache?: boolean];
const at = (hour: string, min: number) => hour.replace(':00:00.', `:${String(min).padStart(2, '0')}:00.`);

// One hour of acme: cli within targets, ci far over; a ui error; the server's own rows.
const CLI_QUEUED = [100, 200, 300, 400, 500, 600, 700, 800, 900, 1000];
const CLI_STARTED = [3000, 7000];
const CI = [4000, 5000, 6000, 9000];
const ROWS: Row[] = [
  ...CLI_QUEUED.map((ms, i): Row => [at(H1, i), 'acme', 'cli', 'signal.rendered', ms, 'queued', i % 2 === 0]),
  ...CLI_STARTED.map((ms, i): Row => [at(H1, 20 + i), 'acme', 'cli', 'signal.rendered', ms, 'started']),
  ...CI.map((ms, i): Row => [at(H1, 30 + i), 'acme', 'ci', 'signal.rendered', ms, 'queued']),
  [at(H1, 40), 'acme', 'ci', 'signal.timeout', 12000, null],
  [at(H1, 41), 'acme', 'ui', 'signal.error', 50, null],
  [at(H1, 42), 'acme', 'cli', 'signal.cache_hit', 0.5, 'queued', true],
  [at(H1, 43), 'acme', 'cli', 'signal.cold_start', 3.25, 'queued'],
  // The next hour, another tenant; and the evening before, one slow cli signal.
  ['2025-12-04T11:05:00.000000Z', 'beta', 'ui', 'signal.rendered', 500, 'queued'],
  ['2025-12-04T11:06:00.000000Z', 'beta', 'ui', 'signal.rendered', 800, 'succeeded'],
  ['2025-12-03T23:30:00.000000Z', 'acme', 'cli', 'signal.rendered', 9000, 'queued'],
  // Months old: what retention removes.
  ['2025-08-01T00:00:00.000000Z', 'acme', 'cli', 'signal.rendered', 100, 'queued'],
  ['2025-08-02T00:00:00.000000Z', 'beta', 'ui', 'signal.rendered', 100, 'queued'],
];

describe('SLO views on seeded telemetry', () => {
  let db: TestDb;
  beforeAll(async () => {
    db = await freshDb();
    for (const [ts, tenant, surface, type, ms, kind, cache] of ROWS)
      await db.pool.query(
        'INSERT INTO okit.ttfs_events (ts, tenant, job_id, surface, event_type, ttfs_ms, kind, cache_hit, error_code) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)',
        [ts, tenant, JOB, surface, type, ms, kind, cache ?? false, type === 'signal.error' ? 'DB_UNAVAILABLE' : null],
      );
  });
  afterAll(async () => {
    await db.drop();
  });

  it('ttfs_hourly_summary: per hour, tenant, surface and kind; percentiles over what users waited only', async () => {
    const { rows } = await db.pool.query(`SELECT * FROM okit.ttfs_hourly_summary WHERE hour = $1 AND tenant = 'acme' ORDER BY surface, kind NULLS FIRST`, [H1]);
    const by = (surface: string, kind: string | null) => rows.find((r) => r.surface === surface && r.kind === kind)!;
    const q = by('cli', 'queued');
    expect(q).toMatchObject({ event_count: '10', avg_ms: '550.000', min_ms: '100.000', max_ms: '1000.000', over_p50_target: '0', over_p95_target: '0', error_count: '0', timeout_count: '0' });
    expect(Number(q.p50_ms)).toBe(pc(CLI_QUEUED, 0.5));
    expect(Number(q.p95_ms)).toBe(pc(CLI_QUEUED, 0.95));
    expect(Number(q.p99_ms)).toBe(pc(CLI_QUEUED, 0.99));
    expect(Number(q.cache_hit_rate)).toBe(0.5);
    expect(q.server_count).toBe('2'); // the server's two rows: counted beside, not in, the percentiles
    expect(Number(q.server_p95_ms)).toBe(pc([0.5, 3.25], 0.95));
    expect(by('cli', 'started')).toMatchObject({ event_count: '2', over_p50_target: '2', over_p95_target: '1' });
    expect(by('ci', null)).toMatchObject({ event_count: '1', timeout_count: '1', over_p95_target: '1' });
    expect(by('ui', null)).toMatchObject({ event_count: '0', error_count: '1', p50_ms: null });
  });

  it('ttfs_daily_summary: per day, tenant and surface', async () => {
    const { rows } = await db.pool.query(`SELECT * FROM okit.ttfs_daily_summary WHERE day = '2025-12-04T00:00:00Z' ORDER BY tenant, surface`);
    expect(rows.map((r) => `${r.tenant}/${r.surface}`)).toEqual(['acme/ci', 'acme/cli', 'acme/ui', 'beta/ui']);
    const cli = rows[1];
    const all = [...CLI_QUEUED, ...CLI_STARTED];
    expect(cli.event_count).toBe('12');
    expect(Number(cli.p50_ms)).toBe(pc(all, 0.5));
    expect(Number(cli.p95_ms)).toBe(pc(all, 0.95));
    expect(Number(cli.cache_hit_rate)).toBeCloseTo(5 / 12, 4);
    expect(Number(rows[0].p95_ms)).toBe(pc([...CI, 12000], 0.95));
    expect(rows[0].timeout_count).toBe('1');
    expect(rows[2]).toMatchObject({ event_count: '0', error_count: '1' });
    expect(Number(rows[3].p50_ms)).toBe(650);
  });

  it('ttfs_slo_breaches: the hours whose p50 or p95 missed the target, and only those; targets are read live', async () => {
    const q = `SELECT to_char(hour AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24') AS h, tenant, surface, total_signals, p50_ms, p95_ms, p50_breaches, p95_breaches, p50_compliance_pct, p95_compliance_pct
               FROM okit.ttfs_slo_breaches ORDER BY hour, tenant, surface`;
    const { rows } = await db.pool.query(q);
    expect(rows.map((r) => `${r.h} ${r.tenant} ${r.surface}`)).toEqual(['2025-12-03T23 acme cli', '2025-12-04T10 acme ci']);
    const ci = rows[1];
    const waits = [...CI, 12000];
    expect(ci).toMatchObject({ total_signals: '5', p50_breaches: '5', p95_breaches: '3', p50_compliance_pct: '0.00', p95_compliance_pct: '40.00' });
    expect(Number(ci.p50_ms)).toBe(pc(waits, 0.5));
    expect(Number(ci.p95_ms)).toBe(pc(waits, 0.95));

    // acme's cli hour has p95 4800 ms: a 4 s target makes it a breach.
    expect(pc([...CLI_QUEUED, ...CLI_STARTED], 0.95)).toBe(4800);
    await db.pool.query("UPDATE okit.ttfs_slo_targets SET p95_ms = 4000 WHERE surface = 'cli'");
    try {
      const again = await db.pool.query(q);
      expect(again.rows.map((r) => `${r.h} ${r.tenant} ${r.surface}`)).toEqual(['2025-12-03T23 acme cli', '2025-12-04T10 acme ci', '2025-12-04T10 acme cli']);
    } finally {
      await db.pool.query("UPDATE okit.ttfs_slo_targets SET p95_ms = 5000 WHERE surface = 'cli'");
    }
  });

  it('sloReport: per surface and kind over the window, breaches against the targets, breaching hours', async () => {
    const r = await sloReport(db.pool, { since: parseMicros('2025-12-04T00:00:00Z'), until: parseMicros('2025-12-05T00:00:00Z') });
    const row = (surface: string, kind: string | null) => r.rows.find((x) => x.surface === surface && x.kind === kind)!;
    expect(r.rows.map((x) => `${x.surface}:${x.kind ?? '*'}`)).toEqual(['ci:*', 'ci:-', 'ci:queued', 'cli:*', 'cli:queued', 'cli:started', 'ui:*', 'ui:-', 'ui:queued', 'ui:succeeded']);
    expect(row('cli', null)).toMatchObject({ events: 12, p50_ms: pc([...CLI_QUEUED, ...CLI_STARTED], 0.5), p95_ms: 4800, over_p95: 1, server_events: 2, breaches: [] });
    expect(row('ci', null)).toMatchObject({ events: 5, timeouts: 1, p50_ms: 6000, breaches: ['p50', 'p95'] });
    expect(row('ui', null)).toMatchObject({ events: 2, errors: 1, p50_ms: 650, breaches: [] });
    expect(row('cli', 'started').breaches).toEqual(['p50', 'p95']); // shown, but a kind does not gate
    expect(r.breached).toBe(true);
    expect(r.breaches).toEqual([`ci p50 6000 ms > 2000 ms`, `ci p95 ${pc([...CI, 12000], 0.95)} ms > 5000 ms`]);
    expect(r.breaching_hours.map((h) => `${h.hour} ${h.surface}`)).toEqual(['2025-12-04T10:00:00.000000Z ci']);
    const text = formatReport(r, '24h').join('\n');
    expect(text).toMatch(/^ci\s+\(all\)\s+5\s+6000\.0\s/m);
    expect(text).toMatch(/result: BREACH: ci p50 6000 ms > 2000 ms/);

    const cliOnly = await sloReport(db.pool, { since: parseMicros('2025-12-04T00:00:00Z'), until: parseMicros('2025-12-05T00:00:00Z'), surface: 'cli' });
    expect(cliOnly.breached).toBe(false);
    expect(cliOnly.rows.every((x) => x.surface === 'cli')).toBe(true);
    const beta = await sloReport(db.pool, { since: parseMicros('2025-12-04T00:00:00Z'), until: parseMicros('2025-12-05T00:00:00Z'), tenant: 'beta' });
    expect(beta.rows.map((x) => `${x.surface}:${x.kind ?? '*'}:${x.events}`)).toEqual(['ui:*:2', 'ui:queued:1', 'ui:succeeded:1']);
    // The evening before is outside this window, inside a 2-day one.
    const two = await sloReport(db.pool, { since: parseMicros('2025-12-03T00:00:00Z'), until: parseMicros('2025-12-05T00:00:00Z'), surface: 'cli' });
    expect(two.rows.find((x) => x.kind === null)!.events).toBe(13);
    expect(two.breaching_hours.map((h) => h.hour)).toEqual(['2025-12-03T23:00:00.000000Z']);
    expect((await sloReport(db.pool, { since: parseMicros('2024-01-01T00:00:00Z'), until: parseMicros('2024-01-02T00:00:00Z') })).rows).toEqual([]);
  });

  it('pruning telemetry removes old events and leaves the ledger alone', async () => {
    const L = new Ledger(db.pool);
    const { job } = await L.enqueue('acme', { type: 'keep' });
    const hist = async () => (await db.pool.query('SELECT count(*)::int AS n FROM okit.job_history')).rows[0].n;
    const before = await hist();
    const n = await pruneTelemetry(db.pool, parseMicros('2025-12-01T00:00:00Z'));
    expect(n).toBe(2);
    const { rows } = await db.pool.query("SELECT count(*)::int AS n, min(ts) AS min FROM okit.ttfs_events");
    expect(rows[0].n).toBe(ROWS.length - 2);
    expect(await hist()).toBe(before);
    expect((await L.history('acme', job.id)).length).toBe(1);
  });
});

describe('okit slo report and okit prune telemetry (the CLI)', () => {
  let db: TestDb;
  beforeAll(async () => {
    db = await freshDb();
    const ins = (ago: string, surface: string, ms: number) =>
      db.pool.query(`INSERT INTO okit.ttfs_events (ts, tenant, job_id, surface, event_type, ttfs_ms, kind) VALUES (now() - $1::interval, 'acme', $2, $3, 'signal.rendered', $4, 'queued')`, [ago, JOB, surface, ms]);
    await ins('10 minutes', 'cli', 300);
    await ins('20 minutes', 'cli', 500);
    await ins('30 minutes', 'ci', 9000);
    await ins('3 days', 'ci', 9000);
    await ins('100 days', 'cli', 100);
  });
  afterAll(async () => {
    await db.drop();
  });
  const env = () => ({ DATABASE_URL: db.url });

  it('exit 1 on a breach (ci), 0 within targets (--surface cli); --json is the report', async () => {
    const all = await okit(['slo', 'report'], env());
    expect(all.code, all.stderr).toBe(1);
    expect(all.stdout).toMatch(/result: BREACH: ci p50 9000 ms > 2000 ms/);
    const cli = await okit(['slo', 'report', '--surface', 'cli', '--json'], env());
    expect(cli.code, cli.stderr).toBe(0);
    const j = JSON.parse(cli.stdout);
    expect(j.rows.find((r: { kind: string | null }) => r.kind === null)).toMatchObject({ surface: 'cli', events: 2, p50_ms: 400, breaches: [] });
    expect(j.breached).toBe(false);
    const week = await okit(['slo', 'report', '--since', '7d', '--surface', 'ci', '--json'], env());
    expect(JSON.parse(week.stdout).rows[0].events).toBe(2);
  });

  it('bad options are usage errors (exit 2) with a message', async () => {
    for (const args of [['--since', '24x'], ['--since', '0h'], ['--surface', 'tv'], ['--tenant', 'Bad Tenant']]) {
      const r = await okit(['slo', 'report', ...args], env());
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr).toMatch(/INVALID_INPUT|must/);
    }
    expect((await okit(['prune', 'telemetry'], env())).code).toBe(2);
    expect((await okit(['prune', 'telemetry', '--older-than', 'forever'], env())).code).toBe(2);
  });

  it('okit prune telemetry --older-than 90d deletes only what is older', async () => {
    const r = await okit(['prune', 'telemetry', '--older-than', '90d'], env());
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^pruned 1 telemetry event\(s\) older than \d{4}-/);
    expect((await db.pool.query('SELECT count(*)::int AS n FROM okit.ttfs_events')).rows[0].n).toBe(4);
  });

  it('okit serve --telemetry-retention prunes at start', async () => {
    await db.pool.query(`INSERT INTO okit.ttfs_events (ts, tenant, job_id, surface, event_type, ttfs_ms) VALUES (now() - interval '2 days', 'acme', $1, 'cli', 'signal.rendered', 1)`, [JOB]);
    const t = await startTestServer(db.url, db.pool, { telemetryRetentionSeconds: 86_400 });
    try {
      for (let i = 0; i < 200; i++) {
        if ((await db.pool.query("SELECT count(*)::int AS n FROM okit.ttfs_events WHERE ts < now() - interval '1 day'")).rows[0].n === 0) break;
        await new Promise((res) => setTimeout(res, 10));
      }
      expect((await db.pool.query('SELECT count(*)::int AS n FROM okit.ttfs_events')).rows[0].n).toBe(3);
    } finally {
      await t.srv.close();
    }
  });
});
