// Issue 14 items 3-5 through the simulator: silent workers marked `stalled` by the sweeper at the
// simulation clock, learned signatures (their MTTR in retry ETAs), links. Every snapshot the live
// ledger wrote during the run (captured by a test-only trigger) is re-derived, byte for byte, by
// projecting the exported bundle's history up to that snapshot's row: replay reproduces every
// enrichment, not only the final signals.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exportBundle } from '../../src/bundle/export.js';
import { importVerified } from '../../src/bundle/import.js';
import { replay } from '../../src/bundle/replay.js';
import { verifyBundle } from '../../src/bundle/verify.js';
import { project, SIGNATURE_CONFIDENCE_FLOOR } from '../../src/ledger/projection.js';
import { SNAPSHOT_COLUMNS, toSnapshot } from '../../src/ledger/rows.js';
import { simulate } from '../../src/ledger/simulate.js';
import type { HistoryRow, Snapshot } from '../../src/ledger/types.js';
import { canonicalize } from '../../src/util/canonical.js';
import { testKey, testPub, tmp } from '../bundle/fixtures.js';
import { freshDb, type TestDb } from '../helpers/db.js';

const TEN = 'enrich';

describe('simulation with stalls and learned signatures: export → replay reproduces every snapshot', () => {
  let db: TestDb;
  let live: Snapshot[];
  let history: HistoryRow[];
  let replayed: ReturnType<typeof replay>;
  let bundlePath: string;
  beforeAll(async () => {
    db = await freshDb();
    // Every snapshot write, as written (the ledger upserts one row per job).
    await db.pool.query(`CREATE TABLE public.snap_log AS SELECT ${SNAPSHOT_COLUMNS} FROM okit.first_signal_snapshots WHERE false`);
    await db.pool.query(`CREATE FUNCTION public.log_snap() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN INSERT INTO public.snap_log SELECT (NEW).job_id, (NEW).tenant, (NEW).run_id, (NEW).kind, (NEW).phase, (NEW).summary, (NEW).eta_seconds,
        (NEW).last_known_outcome, (NEW).next_actions, (NEW).diagnostics, (NEW).source, (NEW).history_n, (NEW).history_hash, (NEW).created_at, (NEW).updated_at;
      RETURN NULL; END $$`);
    await db.pool.query('CREATE TRIGGER log_snap AFTER INSERT OR UPDATE ON okit.first_signal_snapshots FOR EACH ROW EXECUTE FUNCTION public.log_snap()');
    await simulate(db.pool, { seed: 11, jobs: 80, tenant: TEN });
    live = (await db.pool.query(`SELECT ${SNAPSHOT_COLUMNS} FROM public.snap_log WHERE tenant = $1`, [TEN])).rows.map(toSnapshot);
    const r = await exportBundle(db.pool, { tenant: TEN, key: testKey, outDir: tmp() });
    bundlePath = r.path;
    const v = await verifyBundle(r.path, { pubkeys: testPub, collect: true });
    expect(v.problems).toEqual([]);
    history = v.data!.history;
    replayed = replay(v.data!);
  }, 300_000);
  afterAll(async () => {
    await db?.drop();
  });

  it('the workload has stalls, un-stalls, learned signatures above and below the floor, and links', () => {
    const byJob = new Map<string, HistoryRow[]>();
    for (const h of history) byJob.set(h.job_id, [...(byJob.get(h.job_id) ?? []), h]);
    const stalled = history.filter((h) => h.event === 'stalled');
    expect(stalled.length).toBeGreaterThan(3);
    // Never twice without progress in between; some stalls end with progress.
    let cleared = 0;
    for (const rows of byJob.values())
      rows.forEach((h, i) => {
        if (h.event !== 'stalled') return;
        const prev = rows.slice(0, i).reverse().find((x) => x.event === 'stalled' || x.event === 'progress' || x.event === 'claimed');
        expect(prev?.event, `${h.job_id} n=${h.n}`).not.toBe('stalled');
        if (rows[i + 1]?.event === 'progress') cleared++;
      });
    expect(cleared).toBeGreaterThan(0);
    const sigs = history.map((h) => h.data.signature as { learned?: unknown; confidence: number; mttr_p50_seconds?: number } | undefined).filter((s) => s !== undefined);
    expect(sigs.some((s) => s.learned && s.confidence >= SIGNATURE_CONFIDENCE_FLOOR && s.mttr_p50_seconds !== undefined)).toBe(true);
    expect(sigs.some((s) => s.learned && s.confidence < SIGNATURE_CONFIDENCE_FLOOR)).toBe(true);
    expect(sigs.some((s) => !s.learned)).toBe(true);
    // What the live ledger served along the way.
    expect(live.some((s) => s.diagnostics.is_stalled === true && /^No progress for \d/.test(s.summary))).toBe(true);
    expect(live.some((s) => s.kind === 'queued' && s.diagnostics.failure_signature !== undefined && s.eta_seconds !== null)).toBe(true);
    expect(live.some((s) => s.next_actions?.some((a) => a.label === 'View previous run' && a.href?.startsWith('/jobs/')))).toBe(true);
  });

  it('every live snapshot equals the projection of the bundle history up to its row', () => {
    const byJob = new Map<string, HistoryRow[]>();
    for (const h of history) byJob.set(h.job_id, [...(byJob.get(h.job_id) ?? []), h]);
    expect(live.length).toBeGreaterThan(history.length / 3);
    let compared = 0;
    for (const s of live) {
      const rows = byJob.get(s.job_id)!.filter((h) => h.n <= s.history_n);
      expect(canonicalize(project(rows) as never), `${s.job_id} n=${s.history_n}`).toBe(canonicalize(s as never));
      compared++;
    }
    expect(compared).toBe(live.length);
  });

  it('replay of the bundle: final snapshots identical', () => {
    expect(replayed.divergences).toEqual([]);
    expect(replayed.compared).toBe(replayed.jobs);
    expect(replayed.identical).toBe(replayed.compared);
  });

  it('replay --into rebuilds the learned signatures from the bundle alone', async () => {
    const q = `SELECT id, learned_key::text, sample_count, last_seen::text, learned_confidence::text, confidence::text, mttr_us::text
                 FROM okit.failure_signatures WHERE tenant = $1 AND learned_key IS NOT NULL ORDER BY id`;
    const want = (await db.pool.query(q, [TEN])).rows;
    expect(want.length).toBeGreaterThan(1);
    const target = await freshDb();
    try {
      await importVerified(target.pool, { src: bundlePath, report: await verifyBundle(bundlePath, { pubkeys: testPub }) });
      expect((await target.pool.query(q, [TEN])).rows).toEqual(want);
    } finally {
      await target.drop();
    }
  }, 120_000);
});
