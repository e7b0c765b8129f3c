/**
 * Claims woken by NOTIFY (issue 13): `POST /workers/claim` with `wait` answers at once when a
 * job is free, else parks until an enqueue, a retry or lease expiry, or a throttle refill of one
 * of its types wakes it; every wait is bounded; a hint for n jobs wakes n waiters, not the fleet.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Ledger } from '../../src/ledger/ledger.js';
import { OkitClient } from '../../src/worker/client.js';
import { freshDb, type TestDb } from '../helpers/db.js';
import { startTestServer, type TestServer } from '../helpers/serve.js';

const A = '/api/v1/orchestrator';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('claim long-poll', () => {
  let db: TestDb;
  let t: TestServer;
  let w: OkitClient;
  let other: OkitClient;
  beforeAll(async () => {
    db = await freshDb();
    t = await startTestServer(db.url, db.pool, { sweepMs: 200 });
    w = new OkitClient({ url: t.base, token: t.tokens.worker });
    other = new OkitClient({ url: t.base, token: t.tokens.otherAdmin });
  });
  afterAll(async () => {
    await t.srv.close();
    await db.drop();
  });

  /** A claim long-poll, timed. */
  const poll = async (types: string[], wait: number, workerId = 'w1') => {
    const t0 = performance.now();
    const c = await w.claim({ workerId, types, wait, leaseSeconds: 30 });
    return { c, ms: performance.now() - t0 };
  };

  it('answers at once when a job is free', async () => {
    const { job } = await w.enqueue({ type: 'free' });
    const { c, ms } = await poll(['free'], 20);
    expect(c?.job.id).toBe(job.id);
    expect(ms).toBeLessThan(10_000); // far from the 20 s wait: it did not wait
  });

  it('an idle long-poll is woken by an enqueue (and only its tenant’s)', async () => {
    const p = poll(['idle'], 20);
    await sleep(300);
    // Another tenant's job of the same type wakes nobody here and is never handed over.
    await other.enqueue({ type: 'idle' });
    await sleep(300);
    expect(t.srv.claims.size).toBe(1);
    const { job } = await w.enqueue({ type: 'idle' });
    const { c, ms } = await p;
    expect(c?.job.id).toBe(job.id);
    expect(ms).toBeLessThan(15_000);
    expect(t.srv.claims.size).toBe(0);
  });

  it('every wait is bounded: nothing claimable → null after `wait`', async () => {
    const { c, ms } = await poll(['never'], 0.5);
    expect(c).toBeNull();
    expect(ms).toBeGreaterThanOrEqual(450);
    expect(ms).toBeLessThan(10_000);
  });

  it('one enqueue wakes one waiter of five; the rest keep waiting until their bound', async () => {
    const before = t.srv.claims.stats.wakes;
    const polls = [1, 2, 3, 4, 5].map((i) => poll(['herd'], 3, `hw${i}`));
    await sleep(400);
    expect(t.srv.claims.size).toBe(5);
    const { job } = await w.enqueue({ type: 'herd' });
    const got = await Promise.all(polls);
    expect(got.filter((g) => g.c).map((g) => g.c!.job.id)).toEqual([job.id]);
    expect(t.srv.claims.stats.wakes - before).toBe(1);
  });

  it('a retry wakes a waiter when its backoff is over (no event marks that moment)', async () => {
    const { job } = await w.enqueue({ type: 'retry' });
    const c1 = await w.claim({ workerId: 'w1', types: ['retry'] });
    await w.fail(job.id, { workerId: 'w1', leaseToken: c1!.leaseToken, code: 'E_TEMP', message: 'try again' });
    const retryAt = Date.parse((await w.getJob(job.id)).not_before);
    const { c } = await poll(['retry'], 20);
    expect(c?.job.id).toBe(job.id);
    expect(c?.attempt).toBe(2);
    expect(Date.now()).toBeGreaterThanOrEqual(retryAt);
    expect(Date.now() - retryAt).toBeLessThan(10_000);
  });

  it('a lease expiry wakes a waiter', async () => {
    const { job } = await w.enqueue({ type: 'expiry' });
    await w.claim({ workerId: 'gone', types: ['expiry'], leaseSeconds: 1 });
    const { c } = await poll(['expiry'], 20);
    expect(c?.job.id).toBe(job.id);
    expect(c?.attempt).toBe(2);
  });

  it('a throttle refill wakes a waiter', async () => {
    const src = await t.ledger.createSource('acme', { name: 'slow', host: 'slow.example' });
    await t.ledger.configureThrottle('acme', 'slow.example', { capacity: 1, refillPerSec: 1 });
    const { job: a } = await w.enqueue({ type: 'refill', sourceId: src.id });
    const { job: b } = await w.enqueue({ type: 'refill', sourceId: src.id });
    expect((await w.claim({ workerId: 'w1', types: ['refill'] }))?.job.id).toBe(a.id);
    // The bucket is empty: this claim throttles b (for about a second) and waits for the refill.
    const { c, ms } = await poll(['refill'], 20);
    expect(c?.job.id).toBe(b.id);
    expect(ms).toBeGreaterThan(500);
    expect(ms).toBeLessThan(15_000);
    expect((await w.history(b.id)).map((h) => h.event)).toEqual(['enqueued', 'throttled', 'claimed']);
  });

  it('with limit, a long-poll answers the jobs one enqueue made claimable', async () => {
    const p = w.claimMany({ workerId: 'w1', types: ['many'], limit: 5, wait: 20 });
    await sleep(300);
    const made = await w.enqueueMany([{ type: 'many' }, { type: 'many' }, { type: 'many' }]);
    const got = await p;
    expect(got.map((c) => c.job.id).sort()).toEqual(made.map((m) => m.job.id).sort());
  });

  it('a client that gives up waiting leaves nothing claimed behind', async () => {
    const ac = new AbortController();
    const p = w.claim({ workerId: 'quitter', types: ['quit'], wait: 20, signal: ac.signal }).catch((e) => e);
    await sleep(300);
    ac.abort();
    await p;
    await sleep(100);
    expect(t.srv.claims.size).toBe(0);
    const { job } = await w.enqueue({ type: 'quit' });
    await sleep(300);
    expect((await w.getJob(job.id)).state).toBe('queued');
  });

  it('a claim for a client that already left is handed back at once (lease_expired, not after its lease)', async () => {
    const { job } = await w.enqueue({ type: 'handback' });
    const c = await w.claim({ workerId: 'ghost', types: ['handback'], leaseSeconds: 3600 });
    await t.ledger.abandon('acme', job.id, { workerId: 'ghost', leaseToken: c!.leaseToken });
    const j = await w.getJob(job.id);
    expect(j.state).toBe('queued');
    expect(j.attempt).toBe(1);
    expect((await w.history(job.id)).map((h) => h.event)).toEqual(['enqueued', 'claimed', 'lease_expired']);
    await expect(t.ledger.abandon('acme', job.id, { workerId: 'ghost', leaseToken: c!.leaseToken })).rejects.toMatchObject({ code: 'ILLEGAL_TRANSITION' });
  });

  it('refuses a bad wait', async () => {
    for (const wait of [-1, 31, '5', true, [1]]) {
      const r = await t.post(`${A}/workers/claim`, t.tokens.worker, { worker_id: 'w1', types: ['x'], wait });
      expect(r.status).toBe(400);
      const b = (await r.json()) as { error: { code: string; details: { field: string } } };
      expect(b.error.code).toBe('INVALID_INPUT');
      expect(b.error.details.field).toBe('wait');
    }
    expect(t.srv.claims.size).toBe(0);
  });

  it('a paused type keeps its claims parked; its resume (HTTP) wakes them at once', async () => {
    const admin = new OkitClient({ url: t.base, token: t.tokens.admin });
    await admin.pauseQueue('pz', { reason: 'maintenance' });
    const made = await w.enqueueMany([{ type: 'pz' }, { type: 'pz' }]);
    const before = t.srv.claims.stats.wakes;
    const polls = [1, 2].map((i) => poll(['pz'], 20, `pw${i}`));
    await sleep(600);
    expect(t.srv.claims.size).toBe(2); // paused: nothing claimable, both parked
    expect((await admin.resumeQueue('pz')).changed).toBe(true);
    const got = await Promise.all(polls);
    expect(got.map((g) => g.c?.job.id).sort()).toEqual(made.map((m) => m.job.id).sort());
    for (const g of got) expect(g.ms).toBeLessThan(15_000); // woken, not their 20 s bound
    expect(t.srv.claims.stats.wakes - before).toBeGreaterThanOrEqual(2);
    expect(t.srv.claims.size).toBe(0);
  });

  it('a resume by another process wakes parked claims through its NOTIFY, even for a job the pause never marked', async () => {
    // The job waits unmarked under a pause: as after a pause whose process died between its first
    // transaction (the pause row) and the sweep that marks the waiting jobs.
    const { job } = await w.enqueue({ type: 'pz2' });
    await db.pool.query("INSERT INTO okit.queue_pauses (tenant, type, actor, reason, paused_at) VALUES ('acme', 'pz2', 'token:x', NULL, now())");
    const p = poll(['pz2'], 20);
    await sleep(600);
    expect(t.srv.claims.size).toBe(1);
    // Another process (its own Ledger): its resume writes no job row here, so only its `+pz2` claim hints wake the waiter.
    const r = await new Ledger(db.pool).resume('acme', 'pz2', { actor: 'token:y' });
    expect(r).toMatchObject({ changed: true, jobs: 0 });
    const { c, ms } = await p;
    expect(c?.job.id).toBe(job.id);
    expect(ms).toBeLessThan(15_000);
  });

  it('a waiter parked when the server closes answers at once, with no job', async () => {
    const db2 = await freshDb();
    const t2 = await startTestServer(db2.url, db2.pool);
    const w2 = new OkitClient({ url: t2.base, token: t2.tokens.worker });
    const p = (async () => {
      const t0 = performance.now();
      const r = await w2.claim({ workerId: 'w', types: ['x'], wait: 25 }).catch((e) => e);
      return { r, ms: performance.now() - t0 };
    })();
    await sleep(300);
    await t2.srv.close();
    const { r, ms } = await p;
    expect(r).toBeNull();
    expect(ms).toBeLessThan(10_000);
    await db2.drop();
  });
});
