/**
 * Finding 3: a legal progress report never overflows the snapshot. 1e10 items at 1 per 5 s is
 * an ETA of 5e10 s: the projection answers null ("unknown") beyond MAX_ETA_SECONDS, the column
 * is bigint, and items_* are bounded at input.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type RunningServer } from '../../src/http/server.js';
import { createToken } from '../../src/http/tokens.js';
import { Ledger } from '../../src/ledger/ledger.js';
import { MAX_ETA_SECONDS } from '../../src/signals/projection.js';
import { ManualClock } from '../../src/util/clock.js';
import { freshDb, type TestDb } from '../helpers/db.js';
import { T0 } from '../helpers/ledger.js';

const A = '/api/v1/orchestrator';

describe('ETA overflow', () => {
  let db: TestDb;
  let srv: RunningServer;
  let clock: ManualClock;
  let ledger: Ledger;
  let token: string;
  beforeAll(async () => {
    db = await freshDb();
    clock = new ManualClock(T0);
    ledger = new Ledger(db.pool, { clock });
    srv = await startServer({ url: db.url, pool: db.pool, ledger, port: 0 });
    token = (await createToken(db.pool, { tenant: 'acme', scope: 'worker' })).token;
  });
  afterAll(async () => {
    await srv.close();
    await db.drop();
  });
  const post = async (path: string, body: unknown) => {
    const r = await fetch(srv.baseUrl + path, { method: 'POST', headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
    return { status: r.status, body: await r.json() };
  };

  it('1e10 items at one per 5 s: every report is 200, the ETA is null, and the job finishes', async () => {
    const { job } = (await post(`${A}/jobs`, { type: 'huge' })).body;
    const c = (await post(`${A}/workers/claim`, { worker_id: 'w', types: ['huge'], lease_seconds: 3600 })).body;
    const lease = { worker_id: 'w', lease_token: c.lease_token };
    const p0 = await post(`${A}/jobs/${job.id}/progress`, { ...lease, phase: 'analyze', items_total: 1e10, items_done: 0 });
    expect(p0.status).toBe(200);
    for (let done = 1; done <= 3; done++) {
      clock.advance(5_000_000n);
      const p = await post(`${A}/jobs/${job.id}/progress`, { ...lease, phase: 'analyze', items_done: done });
      expect(p.status, JSON.stringify(p.body)).toBe(200);
      expect(p.body.signal.eta_seconds).toBeNull();
      expect(p.body.signal.diagnostics).toMatchObject({ items_done: done, items_total: 1e10 });
    }
    // A rate that makes sense again gives an ETA again.
    clock.advance(1_000_000n);
    const fast = await post(`${A}/jobs/${job.id}/progress`, { ...lease, phase: 'analyze', items_done: 9_999_000_000 });
    expect(fast.status).toBe(200);
    expect(fast.body.signal.eta_seconds).toBeGreaterThan(0);
    expect(fast.body.signal.eta_seconds).toBeLessThanOrEqual(MAX_ETA_SECONDS);
    expect((await post(`${A}/jobs/${job.id}/complete`, lease)).status).toBe(200);
  });

  it('the cap is 365 days: an ETA at it is kept, one second beyond is null', async () => {
    expect(MAX_ETA_SECONDS).toBe(31_536_000);
    const { job } = await ledger.enqueue('acme', { type: 'cap' });
    const c = (await ledger.claim('acme', { workerId: 'w', types: ['cap'] }))!;
    const lease = { workerId: 'w', leaseToken: c.leaseToken };
    await ledger.progress('acme', job.id, lease, { phase: 'fetch', itemsTotal: MAX_ETA_SECONDS + 2, itemsDone: 0 });
    clock.advance(1_000_000n);
    // One item per second, MAX_ETA_SECONDS + 1 left: beyond the cap.
    expect((await ledger.progress('acme', job.id, lease, { phase: 'fetch', itemsDone: 1 })).eta_seconds).toBeNull();
    clock.advance(1_000_000n);
    // Two per two seconds, MAX_ETA_SECONDS left: at the cap.
    expect((await ledger.progress('acme', job.id, lease, { phase: 'fetch', itemsDone: 2 })).eta_seconds).toBe(MAX_ETA_SECONDS);
  });

  it('the snapshot column is bigint; items_* are bounded at input and done never exceeds total in one report', async () => {
    const { rows } = await db.pool.query(
      `SELECT data_type FROM information_schema.columns WHERE table_schema = 'okit' AND table_name = 'first_signal_snapshots' AND column_name = 'eta_seconds'`,
    );
    expect(rows[0].data_type).toBe('bigint');
    const { job } = (await post(`${A}/jobs`, { type: 'bounds' })).body;
    const c = (await post(`${A}/workers/claim`, { worker_id: 'w', types: ['bounds'] })).body;
    const lease = { worker_id: 'w', lease_token: c.lease_token, phase: 'fetch' };
    for (const [body, field] of [
      [{ items_total: 1e12 + 1 }, 'items_total'],
      [{ items_done: 1e13 }, 'items_done'],
      [{ items_total: 1e20 }, 'items_total'],
      [{ items_done: 11, items_total: 10 }, 'items_done'],
    ] as const) {
      const r = await post(`${A}/jobs/${job.id}/progress`, { ...lease, ...body });
      expect(r.status).toBe(400);
      expect(r.body.error).toMatchObject({ code: 'INVALID_INPUT', details: { field } });
    }
    expect((await post(`${A}/jobs/${job.id}/progress`, { ...lease, items_done: 1e12, items_total: 1e12 })).status).toBe(200);
  });
});
