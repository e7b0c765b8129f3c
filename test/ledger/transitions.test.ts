import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Ledger } from '../../src/ledger/ledger.js';
import { allTransitions } from '../../src/ledger/states.js';
import type { ManualClock } from '../../src/util/clock.js';
import { SECOND } from '../../src/util/time.js';
import { freshDb, type TestDb } from '../helpers/db.js';
import { expectRefused, ledgerAt } from '../helpers/ledger.js';

const TEN = 'acme';
const W = 'worker-1';

describe('every transition of the state machine through the Ledger API', () => {
  let db: TestDb;
  let ledger: Ledger;
  let clock: ManualClock;
  const seen = new Set<string>();

  beforeAll(async () => {
    db = await freshDb();
    ({ ledger, clock } = ledgerAt(db.pool, { defaultLeaseSeconds: 30, backoffBaseSeconds: 2 }));
  });
  afterAll(async () => {
    await db.drop();
  });

  async function record(jobId: string) {
    for (const r of await ledger.history(TEN, jobId)) seen.add(`${r.event}|${r.from_state ?? '-'}|${r.to_state}`);
  }
  async function running(type: string, maxAttempts = 3) {
    const { job } = await ledger.enqueue(TEN, { type, maxAttempts });
    const c = await ledger.claim(TEN, { workerId: W, types: [type] });
    expect(c?.job.id).toBe(job.id);
    return job.id;
  }

  it('enqueued, claimed, progress, succeeded', async () => {
    const id = await running('a');
    const s = await ledger.progress(TEN, id, W, { phase: 'analyze', summary: 'Scanning', itemsDone: 1, itemsTotal: 4 });
    expect(s.kind).toBe('phase');
    const done = await ledger.complete(TEN, id, W, { ok: true });
    expect(done.kind).toBe('succeeded');
    const job = await ledger.getJob(TEN, id);
    expect(job).toMatchObject({ state: 'succeeded', lease_owner: null, lease_expires_at: null, history_n: 4 });
    expect((await ledger.history(TEN, id)).map((r) => r.event)).toEqual(['enqueued', 'claimed', 'progress', 'succeeded']);
    await record(id);
  });

  it('stalled (running → running): the sweeper, past stall_after without progress', async () => {
    const id = await running('stall');
    clock.advance(61n * SECOND);
    expect(await ledger.markStalled({ tenant: TEN })).toBe(1);
    expect((await ledger.history(TEN, id)).at(-1)!.event).toBe('stalled');
    await ledger.complete(TEN, id, W);
    await record(id);
  });

  it('retry_scheduled (running → queued), then failed (non-retryable)', async () => {
    const id = await running('b');
    await ledger.fail(TEN, id, W, { code: 'TIMEOUT', message: 'slow', retryable: true });
    expect((await ledger.getJob(TEN, id)).state).toBe('queued');
    clock.advance(60n * SECOND);
    await ledger.claim(TEN, { workerId: W, types: ['b'] });
    await ledger.fail(TEN, id, W, { code: 'BAD_DOC', message: 'broken', retryable: false });
    expect((await ledger.getJob(TEN, id)).state).toBe('failed');
    await record(id);
  });

  it('dead_lettered: a retryable failure on the last attempt', async () => {
    const id = await running('c', 1);
    const s = await ledger.fail(TEN, id, W, { code: 'TIMEOUT', message: 'slow', retryable: true });
    expect(s.kind).toBe('failed');
    expect((await ledger.getJob(TEN, id)).state).toBe('dead_letter');
    await record(id);
  });

  it('lease_expired to queued and to dead_letter', async () => {
    const id = await running('d', 2);
    clock.advance(31n * SECOND);
    expect(await ledger.expireLeases({ tenant: TEN })).toBe(1);
    expect((await ledger.getJob(TEN, id)).state).toBe('queued');
    await ledger.claim(TEN, { workerId: W, types: ['d'] });
    clock.advance(31n * SECOND);
    expect(await ledger.expireLeases({ tenant: TEN })).toBe(1);
    expect((await ledger.getJob(TEN, id)).state).toBe('dead_letter');
    await record(id);
  });

  it('throttled (queued → throttled, throttled → throttled), claimed from throttled, canceled from throttled', async () => {
    const src = await ledger.createSource(TEN, { name: 'slow', host: 'slow.example' });
    await ledger.configureThrottle(TEN, 'slow.example', { capacity: 1, refillPerSec: 0.1 });
    const { job: j1 } = await ledger.enqueue(TEN, { type: 'e', sourceId: src.id });
    clock.advance(1000n);
    const { job: j2 } = await ledger.enqueue(TEN, { type: 'e', sourceId: src.id });
    clock.advance(1000n);
    const { job: j3 } = await ledger.enqueue(TEN, { type: 'e', sourceId: src.id });
    expect((await ledger.claim(TEN, { workerId: W, types: ['e'] }))?.job.id).toBe(j1.id);
    // The bucket is empty: j2 and j3 are throttled, nothing is claimed.
    expect(await ledger.claim(TEN, { workerId: W, types: ['e'] })).toBeNull();
    expect((await ledger.getJob(TEN, j2.id)).state).toBe('throttled');
    expect((await ledger.getJob(TEN, j3.id)).state).toBe('throttled');
    // 10 s later one token: j2 gets it, j3 (now due again) finds the bucket empty once more.
    clock.advance(10n * SECOND);
    expect((await ledger.claim(TEN, { workerId: W, types: ['e'] }))?.job.id).toBe(j2.id);
    expect(await ledger.claim(TEN, { workerId: W, types: ['e'] })).toBeNull();
    const h3 = await ledger.history(TEN, j3.id);
    expect(h3.map((r) => `${r.event}:${r.from_state}`)).toEqual(['enqueued:null', 'throttled:queued', 'throttled:throttled']);
    await ledger.cancel(TEN, j3.id, { actor: 'ops', reason: 'not needed' });
    await ledger.cancel(TEN, j2.id, { actor: 'ops' });
    await Promise.all([j1.id, j2.id, j3.id].map(record));
  });

  it('canceled from queued', async () => {
    const { job } = await ledger.enqueue(TEN, { type: 'f' });
    const s = await ledger.cancel(TEN, job.id, { actor: 'ops', reason: 'dup' });
    expect(s.summary).toBe('Canceled by ops: dup');
    await record(job.id);
  });

  it('retried (from failed, dead_letter, canceled), prioritized, paused and resumed (queued and throttled)', async () => {
    const failed = await running('g');
    await ledger.fail(TEN, failed, W, { code: 'BAD', message: 'no', retryable: false });
    const dead = await running('g', 1);
    await ledger.fail(TEN, dead, W, { code: 'SLOW', message: 'slow' });
    const { job: canceled } = await ledger.enqueue(TEN, { type: 'g' });
    await ledger.cancel(TEN, canceled.id, { actor: 'ops' });
    for (const id of [failed, dead, canceled.id]) {
      const s = await ledger.retry(TEN, id, { actor: 'token:t1', reason: 'fixed upstream' });
      expect(s.kind).toBe('queued');
      expect(s.summary).toMatch(/^Retried by token:t1: fixed upstream; waiting in queue/);
      expect((await ledger.getJob(TEN, id)).attempt).toBe(0);
    }
    await ledger.prioritize(TEN, failed, { priority: 7, actor: 'token:t1' });
    expect((await ledger.getJob(TEN, failed)).priority).toBe(7);
    const src = await ledger.createSource(TEN, { name: 'slow-g', host: 'slow-g.example' });
    await ledger.configureThrottle(TEN, 'slow-g.example', { capacity: 1, refillPerSec: 0.01 });
    await ledger.enqueue(TEN, { type: 'h', sourceId: src.id });
    clock.advance(1000n); // th is the younger, so the second claim meets the empty bucket (equal times order by id)
    const { job: th } = await ledger.enqueue(TEN, { type: 'h', sourceId: src.id });
    await ledger.claim(TEN, { workerId: W, types: ['h'] });
    await ledger.claim(TEN, { workerId: W, types: ['h'] });
    expect((await ledger.getJob(TEN, th.id)).state).toBe('throttled');
    await ledger.prioritize(TEN, th.id, { priority: -3, actor: 'token:t1' });
    const p = await ledger.pause(TEN, 'h', { actor: 'token:t1', reason: 'upstream maintenance' });
    expect(p).toMatchObject({ changed: true, jobs: 1 });
    await ledger.pause(TEN, 'g', { actor: 'token:t1' });
    const r = await ledger.resume(TEN, 'h', { actor: 'token:t1' });
    expect(r).toMatchObject({ changed: true, jobs: 1 });
    await ledger.resume(TEN, 'g', { actor: 'token:t1' });
    await Promise.all([failed, dead, canceled.id, th.id].map(record));
  });

  it('covered every allowed (event, from, to) triple', () => {
    const all = allTransitions().map(([e, f, t]) => `${e}|${f ?? '-'}|${t}`);
    expect([...seen].sort()).toEqual([...all].sort());
  });
});

describe('illegal transitions are typed errors and write nothing', () => {
  let db: TestDb;
  let ledger: Ledger;
  let clock: ManualClock;
  beforeAll(async () => {
    db = await freshDb();
    ({ ledger, clock } = ledgerAt(db.pool));
  });
  afterAll(async () => {
    await db.drop();
  });

  const workerOps = (l: Ledger, id: string): Array<[string, () => Promise<unknown>]> => [
    ['progress', () => l.progress(TEN, id, W, { phase: 'fetch' })],
    ['complete', () => l.complete(TEN, id, W)],
    ['fail', () => l.fail(TEN, id, W, { code: 'X', message: 'x' })],
    ['fail non-retryable', () => l.fail(TEN, id, W, { code: 'X', message: 'x', retryable: false })],
    ['heartbeat', () => l.heartbeat(TEN, id, W)],
  ];

  it('from queued: worker operations are refused', async () => {
    const { job } = await ledger.enqueue(TEN, { type: 'q' });
    for (const [name, op] of workerOps(ledger, job.id)) await expectRefused(db.pool, TEN, op, 'ILLEGAL_TRANSITION').catch((e) => { throw new Error(`${name}: ${e}`); });
  });

  it('from throttled: worker operations are refused', async () => {
    const src = await ledger.createSource(TEN, { name: 'h', host: 'h.example' });
    await ledger.configureThrottle(TEN, 'h.example', { capacity: 1, refillPerSec: 0.01 });
    const { job: a } = await ledger.enqueue(TEN, { type: 'th', sourceId: src.id });
    clock.advance(1n); // claim order among equals is by age: make a the older
    const { job: b } = await ledger.enqueue(TEN, { type: 'th', sourceId: src.id });
    await ledger.claim(TEN, { workerId: W, types: ['th'] });
    await ledger.claim(TEN, { workerId: W, types: ['th'] });
    expect((await ledger.getJob(TEN, b.id)).state).toBe('throttled');
    for (const [, op] of workerOps(ledger, b.id)) await expectRefused(db.pool, TEN, op, 'ILLEGAL_TRANSITION');
    await ledger.cancel(TEN, a.id, { actor: 'ops' });
  });

  it('from every terminal state: every operation is refused', async () => {
    const terminal: string[] = [];
    const mk = async (type: string, maxAttempts = 3) => {
      const { job } = await ledger.enqueue(TEN, { type, maxAttempts });
      await ledger.claim(TEN, { workerId: W, types: [type] });
      return job.id;
    };
    const s = await mk('t1');
    await ledger.complete(TEN, s, W);
    const f = await mk('t2');
    await ledger.fail(TEN, f, W, { code: 'X', message: 'x', retryable: false });
    const d = await mk('t3', 1);
    await ledger.fail(TEN, d, W, { code: 'X', message: 'x' });
    const { job: c } = await ledger.enqueue(TEN, { type: 't4' });
    await ledger.cancel(TEN, c.id, { actor: 'ops' });
    terminal.push(s, f, d, c.id);
    const states = await Promise.all(terminal.map(async (id) => (await ledger.getJob(TEN, id)).state));
    expect(states).toEqual(['succeeded', 'failed', 'dead_letter', 'canceled']);
    for (const id of terminal) {
      // A canceled job tells its worker why (JOB_CANCELED, 409), the others that it is not running.
      for (const [, op] of workerOps(ledger, id)) await expectRefused(db.pool, TEN, op, id === c.id ? 'JOB_CANCELED' : 'ILLEGAL_TRANSITION');
      await expectRefused(db.pool, TEN, () => ledger.cancel(TEN, id, { actor: 'ops' }), 'ILLEGAL_TRANSITION');
    }
    // Terminal jobs are never claimed or expired again.
    clock.advance(3600n * SECOND);
    expect(await ledger.claim(TEN, { workerId: W, types: ['t1', 't2', 't3', 't4'] })).toBeNull();
    expect(await ledger.expireLeases({ tenant: TEN })).toBe(0);
  });

  it('the ledger refuses even when the job row is bypassed: a history row with an illegal triple is rejected by Postgres', async () => {
    const { job } = await ledger.enqueue(TEN, { type: 'sql' });
    await expect(
      db.pool.query(
        `INSERT INTO okit.job_history (tenant, pos, job_id, n, at, event, from_state, to_state, data, prev_hash, hash)
         VALUES ($1, 999999, $2, 2, now(), 'succeeded', 'queued', 'succeeded', '{}', $3, $3)`,
        [TEN, job.id, job.last_hash],
      ),
    ).rejects.toMatchObject({ constraint: 'job_history_transition' });
  });
});
