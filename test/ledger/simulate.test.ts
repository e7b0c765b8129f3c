import { afterAll, describe, expect, it } from 'vitest';
import { checkLedger } from '../../src/ledger/check.js';
import { simulate, type SimulateResult } from '../../src/ledger/simulate.js';
import { freshDb, type TestDb } from '../helpers/db.js';
import { expectCode, ledgerState } from '../helpers/ledger.js';

const TEN = 'sim';

async function run(seed: number, jobs: number): Promise<{ db: TestDb; result: SimulateResult; rows: unknown[]; events: unknown[]; snapshots: unknown[] }> {
  const db = await freshDb();
  const result = await simulate(db.pool, { seed, jobs, tenant: TEN });
  // Everything exactly as stored (raw text from the exact-types pool), hashes included.
  const rows = (await db.pool.query('SELECT * FROM okit.job_history WHERE tenant = $1 ORDER BY pos', [TEN])).rows;
  const events = (await db.pool.query('SELECT * FROM okit.throttle_events WHERE tenant = $1 ORDER BY pos', [TEN])).rows;
  const snapshots = (await db.pool.query('SELECT * FROM okit.first_signal_snapshots WHERE tenant = $1 ORDER BY job_id', [TEN])).rows;
  return { db, result, rows, events, snapshots };
}

describe('deterministic simulation', () => {
  const dbs: TestDb[] = [];
  afterAll(async () => {
    await Promise.all(dbs.map((d) => d.drop()));
  });

  it('the same seed on two fresh databases gives identical history rows, hashes included', async () => {
    const [a, b] = await Promise.all([run(7, 200), run(7, 200)]);
    dbs.push(a.db, b.db);
    expect(a.rows.length).toBeGreaterThan(1000);
    expect(b.rows).toEqual(a.rows);
    expect(b.events).toEqual(a.events);
    expect(b.snapshots).toEqual(a.snapshots);
    expect(b.result.historyDigest).toBe(a.result.historyDigest);
    expect(b.result).toEqual(a.result);

    // The workload exercised what it claims to: every kind of ending and every event.
    const r = a.result;
    expect(r.jobs).toBe(200);
    for (const s of ['succeeded', 'failed', 'canceled']) expect(r.outcomes[s], s).toBeGreaterThan(0);
    const evs = new Set(a.rows.map((x) => (x as { event: string }).event));
    for (const e of ['enqueued', 'claimed', 'throttled', 'progress', 'succeeded', 'retry_scheduled', 'failed', 'lease_expired', 'canceled', 'retried', 'prioritized', 'paused', 'resumed'])
      expect(evs.has(e), e).toBe(true);
    // The operator paused and resumed the report queue once; each retried job was retried once.
    expect(r.queueEvents).toBe(2);
    const retried = a.rows.filter((x) => (x as { event: string }).event === 'retried').map((x) => (x as { job_id: string }).job_id);
    expect(new Set(retried).size).toBe(retried.length);
    const tev = new Set(a.events.map((x) => (x as { event: string }).event));
    expect([...tev].sort()).toEqual(['configured', 'refill_restored', 'upstream_throttled']);
    expect(a.snapshots.some((s) => (s as { source: string }).source === 'failure_index')).toBe(true);
    // Positions are dense: history rows, throttle events and queue events together use 1..head.
    expect(BigInt(r.ledgerHead)).toBe(BigInt(r.historyRows + r.throttleEvents + r.queueEvents));
    const check = await checkLedger(a.db.pool);
    expect(check.problems).toEqual([]);
    expect(check.jobs).toBe(200);
    // Two 200-job simulations: about 30 s alone, far more while other suites share the two cores.
  }, 180_000);

  it('a different seed gives a different history; the same seed in another tenant of the same database runs too', async () => {
    const db = await freshDb();
    dbs.push(db);
    const a = await simulate(db.pool, { seed: 7, jobs: 20, tenant: 'small-7' });
    const b = await simulate(db.pool, { seed: 8, jobs: 20, tenant: 'small-8' });
    expect(b.historyDigest).not.toBe(a.historyDigest);
    // Ids are drawn per tenant, so the same seed in another tenant does not collide with the first run.
    const again = await simulate(db.pool, { seed: 7, jobs: 20, tenant: 'small-7b' });
    expect(again.jobs).toBe(20);
    expect(again.historyDigest).not.toBe(a.historyDigest);
    expect((await checkLedger(db.pool)).problems).toEqual([]);
  });

  it('refuses, with a typed error and nothing written, a tenant that already has a ledger', async () => {
    const db = await freshDb();
    dbs.push(db);
    await simulate(db.pool, { seed: 1, jobs: 3, tenant: 'used' });
    const before = await ledgerState(db.pool, 'used');
    await expectCode(() => simulate(db.pool, { seed: 1, jobs: 3, tenant: 'used' }), 'INVALID_INPUT');
    expect(await ledgerState(db.pool, 'used')).toEqual(before);
  });
});
