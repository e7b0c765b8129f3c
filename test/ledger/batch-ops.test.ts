/** Batch enqueue (Ledger.enqueueMany) and batch claim (claim with a limit). */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkLedger } from '../../src/ledger/check.js';
import type { Ledger } from '../../src/ledger/ledger.js';
import { project } from '../../src/ledger/projection.js';
import { SECOND } from '../../src/util/time.js';
import { freshDb, type TestDb } from '../helpers/db.js';
import { expectCode, expectRefused, ledgerAt } from '../helpers/ledger.js';

async function txOf(db: TestDb, jobIds: string[]): Promise<Set<string>> {
  const { rows } = await db.pool.query('SELECT DISTINCT xmin::text AS x FROM okit.job_history WHERE job_id = ANY($1::uuid[]) AND n = 1', [jobIds]);
  return new Set(rows.map((r) => r.x));
}

describe('enqueueMany', () => {
  let db: TestDb;
  let ledger: Ledger;
  beforeAll(async () => {
    db = await freshDb();
    ({ ledger } = ledgerAt(db.pool));
  });
  afterAll(async () => db.drop());

  it('enqueues 1,000 jobs in one transaction, in input order, queue positions counted once for the batch', async () => {
    // (and claimed in input order: one call's jobs are stamped a microsecond apart)
    await ledger.enqueue('e1', { type: 'scan' }); // one already waiting
    const out = await ledger.enqueueMany(
      'e1',
      Array.from({ length: 1000 }, (_, i) => ({ type: i % 2 ? 'scan' : 'fetch', payload: { i } })),
    );
    expect(out.length).toBe(1000);
    expect(out.every((o) => o.created)).toBe(true);
    expect(out.map((o) => o.job.payload)).toEqual(Array.from({ length: 1000 }, (_, i) => ({ i })));
    expect((await txOf(db, out.map((o) => o.job.id))).size).toBe(1);
    // Positions follow input order; each type's queue position counts what was ahead, then this batch's earlier jobs.
    const hist = await Promise.all(out.map((o) => ledger.history('e1', o.job.id)));
    expect(hist.map((h) => Number(h[0]!.pos))).toEqual(Array.from({ length: 1000 }, (_, i) => i + 2));
    const scans = hist.filter((_, i) => i % 2).map((h) => h[0]!.data.queue_position);
    const fetches = hist.filter((_, i) => i % 2 === 0).map((h) => h[0]!.data.queue_position);
    expect(scans).toEqual(Array.from({ length: 500 }, (_, i) => i + 2));
    expect(fetches).toEqual(Array.from({ length: 500 }, (_, i) => i + 1));
    // The answer is what the ledger holds.
    for (const o of out.slice(0, 20)) {
      expect(o.job).toEqual(await ledger.getJob('e1', o.job.id));
      expect(await ledger.getSnapshot('e1', o.job.id)).toEqual(project(await ledger.history('e1', o.job.id)));
    }
    expect((await checkLedger(db.pool, { tenant: 'e1' })).problems).toEqual([]);
    const first = await ledger.claim('e1', { workerId: 'w', types: ['fetch'], limit: 5 });
    expect(first.map((c) => c.job.id)).toEqual(out.filter((_, i) => i % 2 === 0).slice(0, 5).map((o) => o.job.id));
  });

  it('idempotency works per item: a used key answers its job, a key twice in the call is one job', async () => {
    const { job: old } = await ledger.enqueue('e2', { type: 't', payload: { a: 1 }, idempotencyKey: 'k-old' });
    const out = await ledger.enqueueMany('e2', [
      { type: 't', payload: { a: 1 }, idempotencyKey: 'k-old' },
      { type: 't', payload: { b: 2 }, idempotencyKey: 'k-new' },
      { type: 't', payload: { c: 3 } },
      { type: 't', payload: { b: 2 }, idempotencyKey: 'k-new' },
    ]);
    expect(out.map((o) => o.created)).toEqual([false, true, true, false]);
    expect(out[0]!.job.id).toBe(old.id);
    expect(out[3]!.job.id).toBe(out[1]!.job.id);
    // And again: nothing new.
    const again = await ledger.enqueueMany('e2', [{ type: 't', payload: { b: 2 }, idempotencyKey: 'k-new' }]);
    expect(again).toEqual([{ job: await ledger.getJob('e2', out[1]!.job.id), created: false }]);
    const { rows } = await db.pool.query("SELECT count(*)::int AS n FROM okit.jobs WHERE tenant = 'e2'");
    expect(rows[0].n).toBe(3);
  });

  it('all or nothing: one bad item refuses the call, naming it, and writes nothing', async () => {
    await ledger.enqueue('e3', { type: 't', payload: { a: 1 }, idempotencyKey: 'used' });
    const good = { type: 't', payload: { ok: true } };
    const e = await expectCode(() => ledger.enqueueMany('e3', [good, good, { type: 'bad type!' }]), 'INVALID_INPUT');
    expect((e as { details: { field: string } }).details.field).toBe('jobs[2].type');
    await expectRefused(db.pool, 'e3', () => ledger.enqueueMany('e3', [good, { type: 't', sourceId: '00000000-0000-4000-8000-000000000009' }]), 'SOURCE_NOT_FOUND');
    await expectRefused(db.pool, 'e3', () => ledger.enqueueMany('e3', [good, { type: 't', payload: { a: 2 }, idempotencyKey: 'used' }]), 'IDEMPOTENCY_CONFLICT');
    await expectRefused(
      db.pool,
      'e3',
      () =>
        ledger.enqueueMany('e3', [
          { type: 't', payload: { a: 1 }, idempotencyKey: 'twice' },
          { type: 't', payload: { a: 2 }, idempotencyKey: 'twice' },
        ]),
      'IDEMPOTENCY_CONFLICT',
    );
    const id = '00000000-0000-4000-8000-0000000000e3';
    await expectRefused(db.pool, 'e3', () => ledger.enqueueMany('e3', [{ type: 't', id }, { type: 't', id }]), 'INVALID_INPUT');
    for (const n of [0, 1001]) {
      const err = await expectCode(() => ledger.enqueueMany('e3', Array.from({ length: n }, () => good)), 'INVALID_INPUT');
      expect((err as { details: { field: string } }).details.field).toBe('jobs');
    }
  });

  it('concurrent single enqueues of a tenant share batches; each caller gets its own job', async () => {
    const out = await Promise.all(Array.from({ length: 40 }, (_, i) => ledger.enqueue('e4', { type: 'c', payload: { i } })));
    expect(new Set(out.map((o) => o.job.id)).size).toBe(40);
    expect((await txOf(db, out.map((o) => o.job.id))).size).toBeLessThan(40);
    expect(out.map((o) => o.job.payload)).toEqual(Array.from({ length: 40 }, (_, i) => ({ i })));
  });
});

describe('claim with a limit', () => {
  let db: TestDb;
  beforeAll(async () => {
    db = await freshDb();
  });
  afterAll(async () => db.drop());

  it('hands out up to N jobs in one transaction, best first, each with its own lease', async () => {
    const { ledger } = ledgerAt(db.pool);
    const low = await ledger.enqueueMany('c1', Array.from({ length: 5 }, (_, i) => ({ type: 'w', payload: { i } })));
    const { job: high } = await ledger.enqueue('c1', { type: 'w', priority: 10 });
    const got = await ledger.claim('c1', { workerId: 'w1', types: ['w'], limit: 4 });
    expect(got.map((c) => c.job.id)).toEqual([high.id, ...low.slice(0, 3).map((o) => o.job.id)]);
    expect(new Set(got.map((c) => c.leaseToken)).size).toBe(4);
    const { rows } = await db.pool.query("SELECT count(DISTINCT xmin::text)::int AS n FROM okit.job_history WHERE tenant = 'c1' AND event = 'claimed'");
    expect(rows[0].n).toBe(1);
    for (const c of got) expect(c.job).toEqual(await ledger.getJob('c1', c.job.id));
    // Fewer ready than asked: what there is; none: an empty list.
    expect((await ledger.claim('c1', { workerId: 'w1', types: ['w'], limit: 10 })).length).toBe(2);
    expect(await ledger.claim('c1', { workerId: 'w1', types: ['w'], limit: 10 })).toEqual([]);
    for (const limit of [0, 101, 1.5]) await expectCode(() => ledger.claim('c1', { workerId: 'w1', types: ['w'], limit }), 'INVALID_INPUT');
  });

  it('concurrent claimers with limits never get the same job', async () => {
    const { ledger } = ledgerAt(db.pool);
    await ledger.enqueueMany('c2', Array.from({ length: 60 }, (_, i) => ({ type: 'w', payload: { i } })));
    const all = await Promise.all(Array.from({ length: 12 }, (_, i) => ledger.claim('c2', { workerId: `w${i}`, types: ['w'], limit: 7 })));
    const ids = all.flat().map((c) => c.job.id);
    expect(ids.length).toBe(60);
    expect(new Set(ids).size).toBe(60);
    expect((await checkLedger(db.pool, { tenant: 'c2' })).problems).toEqual([]);
  });

  it('a host with an empty bucket: its jobs are throttled, the others claimed, in the same transaction', async () => {
    const { ledger, clock } = ledgerAt(db.pool);
    const src = await ledger.createSource('c3', { name: 'slow', host: 'slow.example' });
    await ledger.configureThrottle('c3', 'slow.example', { capacity: 2, refillPerSec: 1 });
    await ledger.enqueueMany('c3', [...Array.from({ length: 4 }, () => ({ type: 'w', sourceId: src.id })), { type: 'w' }]);
    const got = await ledger.claim('c3', { workerId: 'w1', types: ['w'], limit: 5 });
    expect(got.length).toBe(3);
    const states = (await db.pool.query("SELECT state, count(*)::int AS n FROM okit.jobs WHERE tenant = 'c3' GROUP BY state ORDER BY state")).rows;
    expect(states).toEqual([
      { state: 'running', n: 3 },
      { state: 'throttled', n: 2 },
    ]);
    clock.advance(5n * SECOND);
    expect((await ledger.claim('c3', { workerId: 'w1', types: ['w'], limit: 5 })).length).toBe(2);
  });
});
