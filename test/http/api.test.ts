import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OkitClient } from '../../src/worker/client.js';
import { freshDb, type TestDb } from '../helpers/db.js';
import { FS, startTestServer, type TestServer } from '../helpers/serve.js';

const A = '/api/v1/orchestrator';

describe('HTTP API: bad input is a 4xx JSON error, never a 500', () => {
  let db: TestDb;
  let t: TestServer;
  let jobId: string;
  beforeAll(async () => {
    db = await freshDb();
    t = await startTestServer(db.url, db.pool, { maxBodyBytes: 1024 });
    jobId = (await t.ledger.enqueue('acme', { type: 'bad' })).job.id;
  });
  afterAll(async () => {
    await t.srv.close();
    await db.drop();
  });

  const cases: Array<[string, () => Promise<Response>, number, string]> = [
    ['body that is not JSON', () => t.post(`${A}/jobs`, t.tokens.worker, '{"type": "x",'), 400, 'INVALID_JSON'],
    ['JSON that is not an object', () => t.post(`${A}/jobs`, t.tokens.worker, '[1,2]'), 400, 'INVALID_JSON'],
    ['body too large', () => t.post(`${A}/jobs`, t.tokens.worker, { type: 'x', payload: { s: 'x'.repeat(5000) } }), 413, 'PAYLOAD_TOO_LARGE'],
    ['wrong content type', () => t.post(`${A}/jobs`, t.tokens.worker, 'type=x', { 'Content-Type': 'text/plain' }), 415, 'UNSUPPORTED_MEDIA_TYPE'],
    ['unknown route', () => t.get(`${A}/nope`, t.tokens.read), 404, 'NOT_FOUND'],
    ['wrong method', () => t.post(FS(jobId), t.tokens.read, {}), 405, 'METHOD_NOT_ALLOWED'],
    ['missing token', () => t.get(FS(jobId), null), 401, 'UNAUTHORIZED'],
    ['malformed token', () => t.get(FS(jobId), 'not-a-token'), 401, 'UNAUTHORIZED'],
    ['unknown token', () => t.get(FS(jobId), 'okit_' + 'A'.repeat(43)), 401, 'UNAUTHORIZED'],
    ['read token on a worker route', () => t.post(`${A}/workers/claim`, t.tokens.read, { worker_id: 'w', types: ['bad'] }), 403, 'FORBIDDEN'],
    ['worker token on cancel (admin)', () => t.post(`${A}/jobs/${jobId}/cancel`, t.tokens.worker, {}), 403, 'FORBIDDEN'],
    ['malformed job id', () => t.get(FS('not-a-uuid'), t.tokens.read), 400, 'INVALID_INPUT'],
    ['percent-garbage id', () => t.get(FS('%E0%A4%A'), t.tokens.read), 404, 'NOT_FOUND'],
    ['wait above 30', () => t.get(FS(jobId) + '?wait=31', t.tokens.read), 400, 'INVALID_INPUT'],
    ['wait not a number', () => t.get(FS(jobId) + '?wait=abc', t.tokens.read), 400, 'INVALID_INPUT'],
    ['invalid enqueue fields', () => t.post(`${A}/jobs`, t.tokens.worker, { type: '' }), 400, 'INVALID_INPUT'],
    ['claim without types', () => t.post(`${A}/workers/claim`, t.tokens.worker, { worker_id: 'w' }), 400, 'INVALID_INPUT'],
    ['complete a job not leased', () => t.post(`${A}/jobs/${jobId}/complete`, t.tokens.worker, { worker_id: 'w', lease_token: 'A'.repeat(22) }), 409, 'ILLEGAL_TRANSITION'],
    ['complete without the lease token', () => t.post(`${A}/jobs/${jobId}/complete`, t.tokens.worker, { worker_id: 'w' }), 400, 'INVALID_INPUT'],
    ['fail with a bad error', () => t.post(`${A}/jobs/${jobId}/fail`, t.tokens.worker, { worker_id: 'w', error: 'boom' }), 400, 'INVALID_INPUT'],
    ['progress with numbers as strings', () => t.post(`${A}/jobs/${jobId}/progress`, t.tokens.worker, { worker_id: 'w', phase: 'analyze', items_done: '3' }), 400, 'INVALID_INPUT'],
  ];
  for (const [name, call, status, code] of cases) {
    it(`${name} → ${status} ${code}`, async () => {
      const r = await call();
      expect(r.status).toBe(status);
      expect(r.headers.get('content-type')).toMatch(/^application\/json/);
      const b = await r.json();
      expect(b.error.code).toBe(code);
      expect(typeof b.error.message).toBe('string');
    });
  }

  it('still serves after all that, and sends Allow on 405', async () => {
    const r = await t.post(FS(jobId), t.tokens.read, {});
    expect(r.headers.get('allow')).toBe('GET');
    expect((await t.get(FS(jobId), t.tokens.read)).status).toBe(200);
  });
});

describe('worker API through the typed client', () => {
  let db: TestDb;
  let t: TestServer;
  beforeAll(async () => {
    db = await freshDb();
    t = await startTestServer(db.url, db.pool);
  });
  afterAll(async () => {
    await t.srv.close();
    await db.drop();
  });

  it('enqueue, claim, heartbeat, progress, complete, getJob; fail; cancel needs admin', async () => {
    const w = new OkitClient({ url: t.base, token: t.tokens.worker });
    const admin = new OkitClient({ url: t.base, token: t.tokens.admin });
    const { job, created } = await w.enqueue({ type: 'scan', payload: { image: 'a' }, idempotencyKey: 'k1' });
    expect(created).toBe(true);
    expect((await w.enqueue({ type: 'scan', payload: { image: 'a' }, idempotencyKey: 'k1' })).created).toBe(false);
    expect(await w.claim({ workerId: 'w1', types: ['other'] })).toBeNull();
    const c = await w.claim({ workerId: 'w1', types: ['scan'], leaseSeconds: 60 });
    expect(c?.job.id).toBe(job.id);
    expect(c?.attempt).toBe(1);
    expect(c?.leaseToken).toMatch(/^[A-Za-z0-9_-]{22}$/);
    const lease = { workerId: 'w1', leaseToken: c!.leaseToken };
    const hb = await w.heartbeat(job.id, { ...lease, leaseSeconds: 120 });
    expect(hb.leaseExpiresAt > c!.leaseExpiresAt).toBe(true);
    const p = await w.progress(job.id, { ...lease, phase: 'analyze', summary: 'Scanning image layers', itemsDone: 47, itemsTotal: 100 });
    expect(p.signal.summary).toBe('Scanning image layers (47%)');
    const fs = await w.firstSignal(job.id);
    expect(fs.status === 200 && fs.etag).toBe(p.etag);
    const done = await w.complete(job.id, { ...lease, result: { ok: true } });
    expect(done.signal.kind).toBe('succeeded');
    expect((await w.getJob(job.id)).state).toBe('succeeded');
    // Lease checks still apply over HTTP.
    await expect(w.complete(job.id, lease)).rejects.toMatchObject({ code: 'ILLEGAL_TRANSITION' });

    const { job: j2 } = await w.enqueue({ type: 'scan', maxAttempts: 1 });
    const c2 = await w.claim({ workerId: 'w2', types: ['scan'] });
    await expect(w.progress(j2.id, { workerId: 'intruder', leaseToken: c2!.leaseToken, phase: 'fetch' })).rejects.toMatchObject({ code: 'LEASE_NOT_HELD' });
    const f = await w.fail(j2.id, { workerId: 'w2', leaseToken: c2!.leaseToken, code: 'E_NET', message: 'unreachable', retryable: false });
    expect(f.signal.kind).toBe('failed');

    const { job: j3 } = await w.enqueue({ type: 'scan' });
    await expect(w.cancel(j3.id)).rejects.toMatchObject({ code: 'FORBIDDEN' });
    const cx = await admin.cancel(j3.id, { reason: 'not needed' });
    expect(cx.signal.kind).toBe('canceled');
    expect(cx.signal.summary).toMatch(/^Canceled by token:[0-9a-f-]{36}: not needed$/);
  });

  it('reports an unreachable server as SERVER_UNREACHABLE', async () => {
    const c = new OkitClient({ url: 'http://127.0.0.1:1', token: t.tokens.read });
    await expect(c.getJob('00000000-0000-4000-8000-000000000000')).rejects.toMatchObject({ code: 'SERVER_UNREACHABLE' });
  });
});
