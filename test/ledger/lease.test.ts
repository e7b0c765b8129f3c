import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Ledger } from '../../src/ledger/ledger.js';
import type { ManualClock } from '../../src/util/clock.js';
import { formatMicros, parseMicros, SECOND } from '../../src/util/time.js';
import { freshDb, type TestDb } from '../helpers/db.js';
import { expectRefused, ledgerAt } from '../helpers/ledger.js';

const TEN = 'lease';

describe('leases: expiry, heartbeat, ownership', () => {
  let db: TestDb;
  let ledger: Ledger;
  let clock: ManualClock;
  beforeAll(async () => {
    db = await freshDb();
    ({ ledger, clock } = ledgerAt(db.pool, { defaultLeaseSeconds: 30 }));
  });
  afterAll(async () => {
    await db.drop();
  });

  it('an expired lease requeues the job with the attempt counted; past max attempts it dead-letters', async () => {
    const { job } = await ledger.enqueue(TEN, { type: 'exp', maxAttempts: 2 });
    const c1 = await ledger.claim(TEN, { workerId: 'w1', types: ['exp'] });
    expect(c1).toMatchObject({ attempt: 1, leaseExpiresAt: formatMicros(clock.now() + 30n * SECOND) });
    // At exactly the expiry instant the lease still holds.
    clock.advance(30n * SECOND);
    expect(await ledger.expireLeases({ tenant: TEN })).toBe(0);
    clock.advance(1n);
    expect(await ledger.expireLeases({ tenant: TEN })).toBe(1);
    let j = await ledger.getJob(TEN, job.id);
    expect(j).toMatchObject({ state: 'queued', attempt: 1, lease_owner: null, lease_expires_at: null, not_before: clock.toString() });
    const h = (await ledger.history(TEN, job.id)).at(-1)!;
    expect(h).toMatchObject({ event: 'lease_expired', from_state: 'running', to_state: 'queued' });
    expect(h.data).toMatchObject({ worker_id: 'w1', attempt: 1 });
    const snap = await ledger.getSnapshot(TEN, job.id);
    expect(snap.kind).toBe('queued');
    expect(snap.summary).toBe('Lease on w1 expired; requeued (attempt 1 of 2 used); no ETA yet: no exp job has succeeded');

    const c2 = await ledger.claim(TEN, { workerId: 'w2', types: ['exp'] });
    expect(c2?.attempt).toBe(2);
    // The first worker lost its lease: it can no longer report.
    await expectRefused(db.pool, TEN, () => ledger.complete(TEN, job.id, 'w1'), 'LEASE_NOT_HELD');
    clock.advance(31n * SECOND);
    expect(await ledger.expireLeases({ tenant: TEN })).toBe(1);
    j = await ledger.getJob(TEN, job.id);
    expect(j).toMatchObject({ state: 'dead_letter', attempt: 2, lease_owner: null });
    expect((await ledger.getSnapshot(TEN, job.id)).last_known_outcome).toMatchObject({ status: 'dead_letter', error_code: 'LEASE_EXPIRED' });
  });

  it('heartbeat extends the lease, so expiry passes it by', async () => {
    const { job } = await ledger.enqueue(TEN, { type: 'hb' });
    await ledger.claim(TEN, { workerId: 'w1', types: ['hb'] });
    const n = (await ledger.getJob(TEN, job.id)).history_n;
    clock.advance(20n * SECOND);
    const hb = await ledger.heartbeat(TEN, job.id, 'w1', 60);
    expect(hb.leaseExpiresAt).toBe(formatMicros(clock.now() + 60n * SECOND));
    const j = await ledger.getJob(TEN, job.id);
    expect(j.lease_expires_at).toBe(hb.leaseExpiresAt);
    expect(j.history_n).toBe(n); // a heartbeat is not a signal change
    clock.advance(45n * SECOND); // past the original 30 s lease, inside the extended one
    expect(await ledger.expireLeases({ tenant: TEN })).toBe(0);
    expect((await ledger.getJob(TEN, job.id)).state).toBe('running');
    clock.advance(16n * SECOND);
    expect(await ledger.expireLeases({ tenant: TEN })).toBe(1);
    expect((await ledger.getJob(TEN, job.id)).state).toBe('queued');
  });

  it('a heartbeat after the lease ran out is refused, even before the reaper ran', async () => {
    const { job } = await ledger.enqueue(TEN, { type: 'late' });
    await ledger.claim(TEN, { workerId: 'w1', types: ['late'] });
    clock.advance(31n * SECOND);
    await expectRefused(db.pool, TEN, () => ledger.heartbeat(TEN, job.id, 'w1'), 'LEASE_NOT_HELD');
    await ledger.expireLeases({ tenant: TEN });
  });

  it('a lease held by another worker: LEASE_NOT_HELD for every worker operation, nothing written', async () => {
    const { job } = await ledger.enqueue(TEN, { type: 'own' });
    await ledger.claim(TEN, { workerId: 'owner', types: ['own'] });
    const leaseBefore = (await ledger.getJob(TEN, job.id)).lease_expires_at;
    await expectRefused(db.pool, TEN, () => ledger.heartbeat(TEN, job.id, 'intruder'), 'LEASE_NOT_HELD');
    await expectRefused(db.pool, TEN, () => ledger.progress(TEN, job.id, 'intruder', { phase: 'fetch' }), 'LEASE_NOT_HELD');
    await expectRefused(db.pool, TEN, () => ledger.complete(TEN, job.id, 'intruder'), 'LEASE_NOT_HELD');
    await expectRefused(db.pool, TEN, () => ledger.fail(TEN, job.id, 'intruder', { code: 'X', message: 'x' }), 'LEASE_NOT_HELD');
    expect((await ledger.getJob(TEN, job.id)).lease_expires_at).toBe(leaseBefore);
    await ledger.complete(TEN, job.id, 'owner');
  });

  it('a claim never hands out a job whose lease is live', async () => {
    const { job } = await ledger.enqueue(TEN, { type: 'once' });
    const [a, b] = await Promise.all([
      ledger.claim(TEN, { workerId: 'a', types: ['once'] }),
      ledger.claim(TEN, { workerId: 'b', types: ['once'] }),
    ]);
    expect([a?.job.id, b?.job.id].filter(Boolean)).toEqual([job.id]);
    expect(parseMicros((a ?? b)!.leaseExpiresAt)).toBe(clock.now() + 30n * SECOND);
  });
});
