/**
 * Finding 9: a lease is fenced by a token, not by the worker id alone. A stale process that
 * shares a worker id with the new holder (its lease expired, the job was claimed again) is
 * 409 LEASE_NOT_HELD on every lease call, and the token is never shown to anyone but the claimer.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OkitClient } from '../../src/worker/client.js';
import { freshDb, type TestDb } from '../helpers/db.js';
import { expectCode } from '../helpers/ledger.js';
import { FS, startTestServer, type TestServer } from '../helpers/serve.js';

const A = '/api/v1/orchestrator';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('lease tokens', () => {
  let db: TestDb;
  let t: TestServer;
  beforeAll(async () => {
    db = await freshDb();
    t = await startTestServer(db.url, db.pool, { sweepMs: 100 });
  });
  afterAll(async () => {
    await t.srv.close();
    await db.drop();
  });

  it('the zombie of attempt 1, sharing the worker id, cannot heartbeat, report, complete or fail attempt 2', async () => {
    const { job } = await (await t.post(`${A}/jobs`, t.tokens.worker, { type: 'zombie', max_attempts: 3 })).json();
    const c1 = await (await t.post(`${A}/workers/claim`, t.tokens.worker, { worker_id: 'same-w', types: ['zombie'], lease_seconds: 1 })).json();
    expect(c1.attempt).toBe(1);
    // The lease runs out; the server's reaper requeues the job; the same worker id claims it again.
    let c2: { attempt: number; lease_token: string; job: { id: string } | null } = { attempt: 0, lease_token: '', job: null };
    for (let i = 0; i < 100 && !c2.job; i++) {
      await sleep(100);
      c2 = await (await t.post(`${A}/workers/claim`, t.tokens.worker, { worker_id: 'same-w', types: ['zombie'], lease_seconds: 60 })).json();
    }
    expect(c2.job?.id).toBe(job.id);
    expect(c2.attempt).toBe(2);

    const zombie = { worker_id: 'same-w', lease_token: c1.lease_token };
    for (const [op, extra] of [
      ['heartbeat', {}],
      ['progress', { phase: 'fetch', summary: 'still here' }],
      ['fail', { error: { code: 'E_ZOMBIE', message: 'late' }, retryable: false }],
      ['complete', { result: { stale: true } }],
    ] as const) {
      const r = await t.post(`${A}/jobs/${job.id}/${op}`, t.tokens.worker, { ...zombie, ...extra });
      expect(r.status, op).toBe(409);
      expect((await r.json()).error.code, op).toBe('LEASE_NOT_HELD');
      // The old way (worker id alone) is refused too: the token is required.
      const old = await t.post(`${A}/jobs/${job.id}/${op}`, t.tokens.worker, { worker_id: 'same-w', ...extra });
      expect(old.status, op).toBe(400);
      expect((await old.json()).error).toMatchObject({ code: 'INVALID_INPUT', details: { field: 'lease_token' } });
    }
    expect(c1.lease_token).toMatch(/^[A-Za-z0-9_-]{22}$/);
    expect(c2.lease_token).not.toBe(c1.lease_token);
    const history = (await (await t.get(`${A}/jobs/${job.id}/history`, t.tokens.read)).json()).history as Array<{ event: string }>;
    expect(history.map((h) => h.event)).toEqual(['enqueued', 'claimed', 'lease_expired', 'claimed']);

    // The holder of attempt 2 carries on.
    const holder = { worker_id: 'same-w', lease_token: c2.lease_token };
    expect((await t.post(`${A}/jobs/${job.id}/heartbeat`, t.tokens.worker, holder)).status).toBe(200);
    expect((await t.post(`${A}/jobs/${job.id}/progress`, t.tokens.worker, { ...holder, phase: 'fetch' })).status).toBe(200);
    const done = await t.post(`${A}/jobs/${job.id}/complete`, t.tokens.worker, { ...holder, result: { fresh: true } });
    expect(done.status).toBe(200);
    expect((await done.json()).signal.kind).toBe('succeeded');
  });

  it('a token of another job, or of another worker id, is LEASE_NOT_HELD; a malformed one is 400', async () => {
    const w = new OkitClient({ url: t.base, token: t.tokens.worker });
    await w.enqueue({ type: 'pair' });
    await w.enqueue({ type: 'pair' });
    const a = (await w.claim({ workerId: 'wa', types: ['pair'] }))!;
    const b = (await w.claim({ workerId: 'wb', types: ['pair'] }))!;
    await expect(w.progress(a.job.id, { workerId: 'wa', leaseToken: b.leaseToken, phase: 'fetch' })).rejects.toMatchObject({ code: 'LEASE_NOT_HELD' });
    await expect(w.progress(a.job.id, { workerId: 'wb', leaseToken: a.leaseToken, phase: 'fetch' })).rejects.toMatchObject({ code: 'LEASE_NOT_HELD' });
    await expect(w.complete(a.job.id, { workerId: 'wa', leaseToken: 'short' })).rejects.toMatchObject({ code: 'INVALID_INPUT' });
    expect((await w.complete(a.job.id, { workerId: 'wa', leaseToken: a.leaseToken })).signal.kind).toBe('succeeded');
    expect((await w.fail(b.job.id, { workerId: 'wb', leaseToken: b.leaseToken, code: 'E', message: 'm', retryable: false })).signal.kind).toBe('failed');
    // A finished job keeps no token.
    const { rows } = await db.pool.query('SELECT count(*)::int AS n FROM okit.jobs WHERE lease_token IS NOT NULL AND state <> $1', ['running']);
    expect(rows[0].n).toBe(0);
  });

  it('the ledger API fences too when given the token; the token is in no reply but the claim, nor in history or bundles', async () => {
    const { job } = await t.ledger.enqueue('acme', { type: 'lib' });
    const c = (await t.ledger.claim('acme', { workerId: 'lw', types: ['lib'] }))!;
    await expectCode(() => t.ledger.complete('acme', job.id, { workerId: 'lw', leaseToken: 'B'.repeat(22) }), 'LEASE_NOT_HELD');
    await t.ledger.progress('acme', job.id, { workerId: 'lw', leaseToken: c.leaseToken }, { phase: 'fetch' });
    const seen = [
      await (await t.get(`${A}/jobs/${job.id}`, t.tokens.read)).text(),
      await (await t.get(`${A}/jobs/${job.id}/history`, t.tokens.read)).text(),
      await (await t.get(FS(job.id), t.tokens.read)).text(),
    ].join('\n');
    expect(seen).toContain('lw');
    expect(seen).not.toContain(c.leaseToken);
    expect(seen).not.toContain('lease_token');
  });
});
