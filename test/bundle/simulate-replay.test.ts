/**
 * Issue 14: the simulator exercises every ETA case, and a simulated bundle replays into the
 * same snapshots, every ETA byte included. Runs stopped mid-way (jobs queued, started, in a
 * phase, blocked, waiting for a retry) and one run to the end are exported, verified and
 * replayed; each replayed snapshot is compared, canonical bytes, with the one the ledger stored.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exportBundle } from '../../src/bundle/export.js';
import { replay } from '../../src/bundle/replay.js';
import { verifyBundle } from '../../src/bundle/verify.js';
import { Ledger } from '../../src/ledger/ledger.js';
import { project } from '../../src/ledger/projection.js';
import { simulate } from '../../src/ledger/simulate.js';
import type { HistoryRow, Snapshot } from '../../src/ledger/types.js';
import { canonicalize } from '../../src/util/canonical.js';
import { freshDb, type TestDb } from '../helpers/db.js';
import { testKey, testPub, tmp } from './fixtures.js';

const SEED = 14;
const JOBS = 60;
const RUNS: Array<{ tenant: string; stopAtTick?: number }> = [35, 70].map((t) => ({ tenant: `eta-${t}`, stopAtTick: t }));
RUNS.push({ tenant: 'eta-end' });

describe('simulated bundles replay every ETA (issue 14)', () => {
  let db: TestDb;
  const history: HistoryRow[] = [];
  const replayed: Snapshot[] = [];
  const results: Array<{ tenant: string; compared: number; identical: number; divergences: number; jobs: number; sameBytes: number }> = [];

  beforeAll(async () => {
    db = await freshDb();
    const ledger = new Ledger(db.pool);
    for (const run of RUNS) {
      const r = await simulate(db.pool, { seed: SEED, jobs: JOBS, tenant: run.tenant, workers: 4, stopAtTick: run.stopAtTick });
      const bundle = await exportBundle(db.pool, { tenant: run.tenant, key: testKey, outDir: tmp() });
      const v = await verifyBundle(bundle.path, { pubkeys: testPub, collect: true });
      expect(v.problems).toEqual([]);
      const rp = replay(v.data!);
      const stored = await ledger.getSnapshots(run.tenant, r.jobIds);
      let sameBytes = 0;
      for (const s of rp.snapshots) if (canonicalize(s as never) === canonicalize(stored.get(s.job_id) as never)) sameBytes++;
      results.push({ tenant: run.tenant, compared: rp.compared, identical: rp.identical, divergences: rp.divergences.length, jobs: r.jobIds.length, sameBytes });
      history.push(...v.data!.history);
      replayed.push(...rp.snapshots);
    }
  }, 240_000);
  afterAll(async () => db.drop());

  it('each bundle verifies and replays into identical snapshots, byte for byte with the stored ones', () => {
    for (const r of results) {
      expect(r.divergences, r.tenant).toBe(0);
      expect(r.compared, r.tenant).toBe(r.jobs);
      expect(r.identical, r.tenant).toBe(r.jobs);
      expect(r.sameBytes, r.tenant).toBe(r.jobs);
    }
  });

  it('the workload writes ETA inputs on every row that changes an ETA, with not-before waits and count-less phases', () => {
    const withEta = new Set(history.filter((h) => h.data.eta !== undefined).map((h) => h.event));
    for (const e of ['enqueued', 'claimed', 'retry_scheduled', 'throttled', 'lease_expired', 'retried']) expect(withEta, e).toContain(e);
    expect(history.some((h) => h.event === 'enqueued' && typeof h.data.wait_seconds === 'number')).toBe(true);
    expect(history.some((h) => h.event === 'progress' && h.data.items_done === undefined)).toBe(true);
    expect(history.some((h) => h.event === 'progress' && typeof h.data.items_done === 'number')).toBe(true);
    // Types differ in duration: their p50s differ.
    const p50 = new Map<string, number>();
    for (const h of history) {
      const e = h.data.eta as { p50_seconds: number | null } | undefined;
      if (h.event === 'enqueued' && e?.p50_seconds != null) p50.set(String(h.data.type), e.p50_seconds);
    }
    expect(new Set(p50.values()).size).toBe(3);
  });

  it('the signals it serves on the way cover every ETA case: queued, started, phase, blocked, retry, past the p50, no history', () => {
    // Every signal the ledger served: the projection of each prefix of each job's history.
    const byJob = new Map<string, HistoryRow[]>();
    for (const h of history) {
      const k = `${h.tenant}/${h.job_id}`;
      if (!byJob.has(k)) byJob.set(k, []);
      byJob.get(k)!.push(h);
    }
    const served: Snapshot[] = [];
    for (const rows of byJob.values()) {
      rows.sort((a, b) => a.n - b.n);
      for (let i = 1; i <= rows.length; i++) served.push(project(rows.slice(0, i)));
    }
    const open = served.filter((s) => s.eta_seconds !== null && s.kind !== 'succeeded');
    const kinds = new Set(open.map((s) => s.kind));
    for (const k of ['queued', 'started', 'phase', 'blocked']) expect(kinds, k).toContain(k);
    expect(open.some((s) => s.kind === 'queued' && s.diagnostics.retry_at !== undefined), 'a retry ETA').toBe(true);
    expect(open.some((s) => s.kind === 'phase' && s.diagnostics.items_total !== null), 'a rate ETA').toBe(true);
    expect(open.some((s) => s.kind === 'queued' && s.diagnostics.queue_position !== null && s.diagnostics.queue_position > 1), 'behind others').toBe(true);
    expect(served.some((s) => s.summary.includes('taking longer than usual (p50 ')), 'past the p50').toBe(true);
    expect(served.some((s) => s.summary.includes('no ETA yet: no ')), 'no history').toBe(true);
    // And the stopped runs' bundles hold open jobs, so their replay compared live ETAs, not only finished ones.
    expect(replayed.filter((s) => s.eta_seconds !== null && s.eta_seconds > 0).length).toBeGreaterThan(10);
  });
});
