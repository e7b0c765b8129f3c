/**
 * Control actions as ledger transitions: retry (attempts given back, bulk and bounded),
 * prioritize, pause/resume per {tenant, type} (queue events at the tenant's positions, claims
 * skip the type, waiting jobs' signals say who paused it and why, resume restores them).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Ledger } from '../../src/ledger/ledger.js';
import { checkLedger } from '../../src/ledger/check.js';
import { project } from '../../src/ledger/projection.js';
import type { ManualClock } from '../../src/util/clock.js';
import { SECOND } from '../../src/util/time.js';
import { freshDb, type TestDb } from '../helpers/db.js';
import { expectRefused, ledgerAt } from '../helpers/ledger.js';

const TEN = 'acme';
const W = 'worker-1';
const OPS = 'token:00000000-0000-4000-8000-0000000000aa';

describe('control actions', () => {
  let db: TestDb;
  let ledger: Ledger;
  let clock: ManualClock;

  beforeAll(async () => {
    db = await freshDb();
    ({ ledger, clock } = ledgerAt(db.pool, { backoffBaseSeconds: 1 }));
  });
  afterAll(async () => db.drop());

  async function deadLetter(type: string, code = 'E_FETCH') {
    const { job } = await ledger.enqueue(TEN, { type, maxAttempts: 1 });
    const c = await ledger.claim(TEN, { workerId: W, types: [type] });
    expect(c?.job.id).toBe(job.id);
    await ledger.fail(TEN, job.id, W, { code, message: 'upstream went away' });
    return job.id;
  }

  it('retry gives the attempts back and the job is claimable at once; illegal from succeeded, queued, running', async () => {
    const id = await deadLetter('r1');
    expect((await ledger.getJob(TEN, id)).attempt).toBe(1);
    const s = await ledger.retry(TEN, id, { actor: OPS, reason: 'mirror is back' });
    expect(s.summary).toBe(`Retried by ${OPS}: mirror is back; waiting in queue (1 attempt given back); no ETA yet: no r1 job has succeeded`);
    expect(s.last_known_outcome).toMatchObject({ status: 'dead_letter', error_code: 'E_FETCH' });
    const job = await ledger.getJob(TEN, id);
    expect(job).toMatchObject({ state: 'queued', attempt: 0, max_attempts: 1 });
    const c = await ledger.claim(TEN, { workerId: W, types: ['r1'] });
    expect(c).toMatchObject({ attempt: 1 });
    await expectRefused(db.pool, TEN, () => ledger.retry(TEN, id, { actor: OPS }), 'ILLEGAL_TRANSITION'); // running
    await ledger.complete(TEN, id, W);
    await expectRefused(db.pool, TEN, () => ledger.retry(TEN, id, { actor: OPS }), 'ILLEGAL_TRANSITION'); // succeeded
    const { job: q } = await ledger.enqueue(TEN, { type: 'r1' });
    await expectRefused(db.pool, TEN, () => ledger.retry(TEN, q.id, { actor: OPS }), 'ILLEGAL_TRANSITION'); // queued
    await expectRefused(db.pool, TEN, () => ledger.retry('other', q.id, { actor: OPS }), 'JOB_NOT_FOUND');
  });

  it('retryDeadLetters is bounded, oldest dead first, of one type only, and says whether more remain', async () => {
    const ids = [];
    for (let i = 0; i < 5; i++) {
      ids.push(await deadLetter('r2'));
      clock.advance(SECOND);
    }
    const other = await deadLetter('r3');
    const a = await ledger.retryDeadLetters(TEN, { type: 'r2', limit: 3, actor: OPS });
    expect(a.jobs.map((j) => j.job.id)).toEqual(ids.slice(0, 3));
    expect(a.more).toBe(true);
    const b = await ledger.retryDeadLetters(TEN, { type: 'r2', limit: 3, actor: OPS });
    expect(b.jobs.map((j) => j.job.id)).toEqual(ids.slice(3));
    expect(b.more).toBe(false);
    expect((await ledger.getJob(TEN, other)).state).toBe('dead_letter');
    await expectRefused(db.pool, TEN, () => ledger.retryDeadLetters(TEN, { type: 'r2', limit: 1001, actor: OPS }), 'INVALID_INPUT');
  });

  it('prioritize changes a waiting job’s claim order; a running or finished job is ILLEGAL_TRANSITION', async () => {
    const { job: a } = await ledger.enqueue(TEN, { type: 'p1' });
    clock.advance(SECOND);
    const { job: b } = await ledger.enqueue(TEN, { type: 'p1' });
    const s = await ledger.prioritize(TEN, b.id, { priority: 50, actor: OPS, reason: 'customer waiting' });
    expect(s.summary).toBe(`Waiting in queue (priority 50, set by ${OPS})`);
    const h = await ledger.history(TEN, b.id);
    expect(h[h.length - 1]).toMatchObject({ event: 'prioritized', data: { priority: 50, priority_before: 0, actor: OPS, reason: 'customer waiting' } });
    expect((await ledger.claim(TEN, { workerId: W, types: ['p1'] }))?.job.id).toBe(b.id);
    await expectRefused(db.pool, TEN, () => ledger.prioritize(TEN, b.id, { priority: 1, actor: OPS }), 'ILLEGAL_TRANSITION');
    await expectRefused(db.pool, TEN, () => ledger.prioritize(TEN, a.id, { priority: 1001, actor: OPS }), 'INVALID_INPUT');
  });

  it('pause: a queue event, claims skip the type, waiting jobs say who paused it; resume restores their signals', async () => {
    const { job: j1 } = await ledger.enqueue(TEN, { type: 'scan' });
    const before = await ledger.getSnapshot(TEN, j1.id);
    const p = await ledger.pause(TEN, 'scan', { actor: OPS, reason: 'registry maintenance' });
    expect(p).toMatchObject({ type: 'scan', changed: true, jobs: 1, paused: { actor: OPS, reason: 'registry maintenance' } });
    const s1 = await ledger.getSnapshot(TEN, j1.id);
    expect(s1).toMatchObject({ kind: 'blocked', summary: `Paused by ${OPS}: registry maintenance` });
    expect(s1.next_actions).toEqual([{ label: 'Resume the scan queue', command: 'okit queue resume scan' }]);
    // A job enqueued while paused waits paused from its first transaction.
    clock.advance(SECOND);
    const { job: j2 } = await ledger.enqueue(TEN, { type: 'scan' });
    expect((await ledger.getSnapshot(TEN, j2.id)).kind).toBe('blocked');
    expect(await ledger.claim(TEN, { workerId: W, types: ['scan'] })).toBeNull();
    const { job: other } = await ledger.enqueue(TEN, { type: 'fetch-x' });
    expect((await ledger.claim(TEN, { workerId: W, types: ['scan', 'fetch-x'] }))?.job.id).toBe(other.id);
    // Pausing again changes nothing and writes no queue event.
    const { rows: ev1 } = await db.pool.query('SELECT count(*)::int AS n FROM okit.queue_events WHERE tenant = $1', [TEN]);
    expect(await ledger.pause(TEN, 'scan', { actor: OPS })).toMatchObject({ changed: false, jobs: 0 });
    const { rows: ev2 } = await db.pool.query('SELECT count(*)::int AS n FROM okit.queue_events WHERE tenant = $1', [TEN]);
    expect(ev2[0].n).toBe(ev1[0].n);
    expect((await ledger.listQueues(TEN)).find((q) => q.type === 'scan')).toMatchObject({ paused: { actor: OPS }, counts: { queued: 2 } });
    const r = await ledger.resume(TEN, 'scan', { actor: OPS, reason: 'done' });
    expect(r).toMatchObject({ changed: true, jobs: 2 });
    const s2 = await ledger.getSnapshot(TEN, j1.id);
    expect({ kind: s2.kind, summary: s2.summary, next_actions: s2.next_actions }).toEqual({ kind: before.kind, summary: before.summary, next_actions: before.next_actions });
    expect((await ledger.claim(TEN, { workerId: W, types: ['scan'] }))?.job.id).toBe(j1.id);
    expect(await ledger.resume(TEN, 'scan', { actor: OPS })).toMatchObject({ changed: false });
    // Queue events share the tenant's positions: the ledger stays dense and every snapshot is its history's projection.
    const { rows: qe } = await db.pool.query("SELECT event, type, data FROM okit.queue_events WHERE tenant = $1 ORDER BY pos", [TEN]);
    expect(qe.map((e) => `${e.event}:${e.type}`)).toEqual(['paused:scan', 'resumed:scan']);
    expect((await checkLedger(db.pool, { tenant: TEN })).problems).toEqual([]);
    for (const id of [j1.id, j2.id]) expect(await ledger.getSnapshot(TEN, id)).toEqual(project(await ledger.history(TEN, id)));
  });

  it('a job requeued (retry_scheduled) or retried while its type is paused is marked paused in the same transaction', async () => {
    const { job } = await ledger.enqueue(TEN, { type: 'flaky', maxAttempts: 3 });
    await ledger.claim(TEN, { workerId: W, types: ['flaky'] });
    await ledger.pause(TEN, 'flaky', { actor: OPS, reason: 'investigating' });
    const s = await ledger.fail(TEN, job.id, W, { code: 'TIMEOUT', message: 'slow' });
    expect(s).toMatchObject({ kind: 'blocked', summary: `Paused by ${OPS}: investigating` });
    const h = await ledger.history(TEN, job.id);
    expect(h.slice(-2).map((r) => r.event)).toEqual(['retry_scheduled', 'paused']);
    clock.advance(60n * SECOND);
    expect(await ledger.claim(TEN, { workerId: W, types: ['flaky'] })).toBeNull();
    await ledger.resume(TEN, 'flaky', { actor: OPS });
    expect((await ledger.getSnapshot(TEN, job.id)).summary).toMatch(/^Retry 2 of 3 at /);
    expect((await ledger.claim(TEN, { workerId: W, types: ['flaky'] }))?.job.id).toBe(job.id);
  });

  it('a claim that prepared its batch before a pause committed is run again and skips the type', async () => {
    const { job } = await ledger.enqueue(TEN, { type: 'race' });
    // Both go to the writer in the same turn: whichever is ordered first, the claim never hands
    // out a job of the type once the pause is in the ledger before it.
    const [claimed, paused] = await Promise.all([ledger.claim(TEN, { workerId: W, types: ['race'] }), ledger.pause(TEN, 'race', { actor: OPS })]);
    const h = await ledger.history(TEN, job.id);
    const { rows } = await db.pool.query("SELECT pos FROM okit.queue_events WHERE tenant = $1 AND type = 'race'", [TEN]);
    const pausePos = BigInt(rows[0].pos);
    const claimRow = h.find((r) => r.event === 'claimed');
    if (claimed) expect(BigInt(claimRow!.pos)).toBeLessThan(pausePos);
    else expect(claimRow).toBeUndefined();
    expect(paused.changed).toBe(true);
  });

  it('pausing many jobs sweeps them in several transactions, every one marked', async () => {
    const many = Array.from({ length: 1200 }, (_, i) => ({ type: 'bulk', payload: { i } }));
    await ledger.enqueueMany(TEN, many.slice(0, 1000));
    await ledger.enqueueMany(TEN, many.slice(1000));
    const p = await ledger.pause(TEN, 'bulk', { actor: OPS });
    expect(p.jobs).toBe(1200);
    const { rows } = await db.pool.query(
      "SELECT count(*)::int AS n FROM okit.first_signal_snapshots s JOIN okit.jobs j ON j.id = s.job_id WHERE j.tenant = $1 AND j.type = 'bulk' AND s.kind = 'blocked'",
      [TEN],
    );
    expect(rows[0].n).toBe(1200);
    expect((await ledger.resume(TEN, 'bulk', { actor: OPS })).jobs).toBe(1200);
  });
});
