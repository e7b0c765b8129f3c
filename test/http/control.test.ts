/**
 * The control-plane routes over HTTP, each with its client method: happy path, scope (403),
 * tenant isolation (another tenant's resource answers byte for byte as a missing one), bad
 * input (400), illegal actions (409).
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OkitClient } from '../../src/worker/client.js';
import { freshDb, type TestDb } from '../helpers/db.js';
import { startTestServer, type TestServer } from '../helpers/serve.js';

const API = '/api/v1/orchestrator';

describe('control plane over HTTP', () => {
  let db: TestDb;
  let t: TestServer;
  let admin: OkitClient;
  let worker: OkitClient;
  let read: OkitClient;
  let otherAdmin: OkitClient;
  beforeAll(async () => {
    db = await freshDb();
    t = await startTestServer(db.url, db.pool, { fallbackPollMs: 200 });
    admin = new OkitClient({ url: t.base, token: t.tokens.admin });
    worker = new OkitClient({ url: t.base, token: t.tokens.worker });
    read = new OkitClient({ url: t.base, token: t.tokens.read });
    otherAdmin = new OkitClient({ url: t.base, token: t.tokens.otherAdmin });
  });
  afterAll(async () => {
    await t.srv.close();
    await db.drop();
  });

  /** A foreign resource answers exactly as an absent one: same status, same body with the id swapped. */
  async function sameAsAbsent(path: (id: string) => string, foreignId: string, method: 'GET' | 'POST' = 'GET', body: unknown = {}) {
    const absent = randomUUID();
    const call = (id: string) => (method === 'GET' ? t.get(path(id), t.tokens.admin) : t.post(path(id), t.tokens.admin, body));
    const [f, a] = await Promise.all([call(foreignId), call(absent)]);
    expect(f.status).toBe(404);
    expect(f.status).toBe(a.status);
    expect((await f.text()).replaceAll(foreignId, 'ID')).toBe((await a.text()).replaceAll(absent, 'ID'));
  }
  const code = async (p: Promise<unknown>) => {
    try {
      await p;
    } catch (e) {
      return (e as { code: string }).code;
    }
    return 'OK';
  };

  it('sources: create (admin; same again is 200), list and get (read); foreign is absent; bad host 400', async () => {
    const a = await admin.createSource({ name: 'registry', host: 'registry.example' });
    expect(a.created).toBe(true);
    const again = await t.post(`${API}/sources`, t.tokens.admin, { name: 'registry', host: 'registry.example' });
    expect(again.status).toBe(200);
    expect(await code(worker.createSource({ name: 'x', host: 'x.example' }))).toBe('FORBIDDEN');
    expect((await read.listSources()).map((s) => s.name)).toEqual(['registry']);
    expect(await read.getSource(a.source.id)).toEqual(a.source);
    const foreign = await otherAdmin.createSource({ name: 'theirs', host: 'theirs.example' });
    expect((await read.listSources()).map((s) => s.name)).toEqual(['registry']);
    await sameAsAbsent((id) => `${API}/sources/${id}`, foreign.source.id);
    expect(await code(admin.createSource({ name: 'bad', host: 'not a host' }))).toBe('INVALID_INPUT');
    expect(await code(admin.createSource({ name: 'registry', host: 'elsewhere.example' }))).toBe('INVALID_INPUT');
  });

  it('throttles: set (admin) answers the bucket; list (read) shows state now and the last upstream throttle; tenants apart', async () => {
    const b = await admin.setThrottle({ host: 'registry.example', capacity: 5, refillPerSec: 2 });
    expect(b).toMatchObject({ host: 'registry.example', capacity: '5', tokens: '5', refill_per_sec: '2', base_refill_per_sec: '2', penalty_until: null, last_upstream_throttle: null });
    await t.ledger.reportThrottle('acme', 'registry.example', { retryAfterSeconds: 30, status: 429, workerId: 'w1' });
    const [l] = await read.listThrottles();
    expect(l).toMatchObject({ host: 'registry.example', tokens: '0', refill_per_sec: '1', last_upstream_throttle: { status: 429, retry_after_seconds: '30', worker_id: 'w1' } });
    expect(l!.penalty_until).not.toBeNull();
    expect(await code(worker.setThrottle({ host: 'h.example', capacity: 1, refillPerSec: 1 }))).toBe('FORBIDDEN');
    expect(await code(admin.setThrottle({ host: 'h.example', capacity: 0, refillPerSec: 1 }))).toBe('INVALID_INPUT');
    expect(await otherAdmin.listThrottles()).toEqual([]);
  });

  it('signatures: add (admin) with payload regexes, invalid regex 400 with the RE2 error, list/get (read), retire (admin); foreign is absent', async () => {
    const r = await t.post(`${API}/signatures`, t.tokens.admin, { pattern: { error_code: 'E', payload: { image: '(unclosed' } }, outcome: { likely_cause: 'x' } });
    expect(r.status).toBe(400);
    const err = (await r.json()) as { error: { code: string; message: string; details: { field: string } } };
    expect(err.error).toMatchObject({ code: 'INVALID_INPUT', details: { field: 'pattern.payload.image' } });
    expect(err.error.message).toContain('missing )');
    const { signature, created } = await admin.addSignature({ pattern: { type: 'scan', error_code: 'LAYER', payload: { image: '^legacy/' } }, outcome: { likely_cause: 'old image', mttr_p50_seconds: 300 }, confidence: 0.8 });
    expect(created).toBe(true);
    expect(signature).toMatchObject({ created_by: expect.stringMatching(/^token:/), confidence: 0.8, sample_count: 0 });
    expect((await read.listSignatures()).map((s) => s.id)).toEqual([signature.id]);
    expect(await read.getSignature(signature.id)).toEqual(signature);
    expect(await code(worker.addSignature({ pattern: { error_code: 'E' }, outcome: { likely_cause: 'x' } }))).toBe('FORBIDDEN');
    expect(await code(read.retireSignature(signature.id))).toBe('FORBIDDEN');
    const foreign = await otherAdmin.addSignature({ pattern: { error_code: 'E' }, outcome: { likely_cause: 'theirs' } });
    await sameAsAbsent((id) => `${API}/signatures/${id}`, foreign.signature.id);
    await sameAsAbsent((id) => `${API}/signatures/${id}/retire`, foreign.signature.id, 'POST');
    const retired = await admin.retireSignature(signature.id);
    expect(retired.retired_at).not.toBeNull();
    expect(await read.listSignatures()).toEqual([]);
    expect((await read.listSignatures({ includeRetired: true })).length).toBe(1);
  });

  it('jobs: list with filters, totals per state, keyset cursor; bad filter or cursor 400; tenants apart', async () => {
    const src = (await read.listSources())[0]!;
    for (let i = 0; i < 7; i++) await worker.enqueue({ type: i % 2 ? 'scan' : 'report', payload: { i }, sourceId: i < 3 ? src.id : undefined });
    await otherAdmin.enqueue({ type: 'scan' });
    const all = await read.listJobs({ limit: 3 });
    expect(all.jobs.length).toBe(3);
    expect(all.totals.queued).toBe(7);
    expect(all.next_cursor).not.toBeNull();
    const seen = [...all.jobs];
    let cursor = all.next_cursor;
    // A job enqueued between pages (newer, so before the cursor in newest-first order) does not shift the pages.
    await worker.enqueue({ type: 'scan', payload: { late: true } });
    while (cursor) {
      const p = await read.listJobs({ limit: 3, cursor });
      seen.push(...p.jobs);
      cursor = p.next_cursor;
    }
    expect(seen.length).toBe(7);
    expect(new Set(seen.map((j) => j.id)).size).toBe(7);
    expect(seen.map((j) => j.created_at)).toEqual([...seen.map((j) => j.created_at)].sort().reverse());
    const scans = await read.listJobs({ type: 'scan', source_id: src.id });
    expect(scans.jobs.every((j) => j.type === 'scan' && j.source_id === src.id)).toBe(true);
    expect(scans.jobs.length).toBe(1);
    expect((await read.listJobs({ state: 'running,succeeded' })).jobs).toEqual([]);
    expect((await read.listJobs({ kind: 'queued', sort: 'updated', order: 'asc' })).jobs.length).toBe(8);
    for (const q of ['state=nope', 'kind=x', 'sort=size', 'limit=0', 'limit=501', 'cursor=abc', 'created_after=yesterday', 'colour=red', 'type=a&type=b', 'run_id=x'])
      expect((await t.get(`${API}/jobs?${q}`, t.tokens.read)).status, q).toBe(400);
    // A cursor is bound to its filters.
    expect((await t.get(`${API}/jobs?type=report&cursor=${all.next_cursor}`, t.tokens.read)).status).toBe(400);
    expect((await new OkitClient({ url: t.base, token: t.tokens.otherRead }).listJobs()).jobs.length).toBe(1);
  });

  it('retry, prioritize, dead-letter review and bulk retry (admin); illegal actions 409; foreign jobs absent', async () => {
    const { job } = await worker.enqueue({ type: 'dl', maxAttempts: 1, payload: { image: 'legacy/app' } });
    const c = (await worker.claim({ workerId: 'w1', types: ['dl'] }))!;
    await admin.addSignature({ pattern: { type: 'dl', error_code: 'E_LAYER' }, outcome: { likely_cause: 'layer store corrupt', suggested_action: 'resync' } });
    await worker.fail(job.id, { workerId: 'w1', leaseToken: c.leaseToken, code: 'E_LAYER', message: 'layer 3 broken' });
    const dead = await read.listJobs({ state: 'dead_letter' });
    expect(dead.jobs).toHaveLength(1);
    expect(dead.jobs[0]).toMatchObject({ id: job.id, attempt: 1, max_attempts: 1, last_error: { code: 'E_LAYER', message: 'layer 3 broken' }, signature: { likely_cause: 'layer store corrupt' } });
    expect((await read.listJobs({ error_code: 'E_LAYER' })).jobs.map((j) => j.id)).toEqual([job.id]);
    expect(await code(worker.retry(job.id))).toBe('FORBIDDEN');
    const r = await admin.retry(job.id, { reason: 'resynced' });
    expect(r.signal).toMatchObject({ kind: 'queued' });
    expect(r.signal.summary).toMatch(/^Retried by token:.*: resynced; waiting in queue/);
    expect(await code(admin.retry(job.id))).toBe('ILLEGAL_TRANSITION');
    const p = await admin.prioritize(job.id, { priority: 9 });
    expect(p.signal.diagnostics).toMatchObject({ priority: 9 });
    expect(await code(admin.prioritize(job.id, { priority: 5000 }))).toBe('INVALID_INPUT');
    const c2 = (await worker.claim({ workerId: 'w1', types: ['dl'] }))!;
    expect(await code(admin.prioritize(job.id, { priority: 1 }))).toBe('ILLEGAL_TRANSITION');
    await worker.fail(job.id, { workerId: 'w1', leaseToken: c2.leaseToken, code: 'E_LAYER', message: 'again' });
    const bulk = await admin.retryDeadLetters({ type: 'dl', limit: 10 });
    expect(bulk).toMatchObject({ more: false, jobs: [{ job: { id: job.id, state: 'queued', attempt: 0 } }] });
    expect(await code(admin.retryDeadLetters({ type: 'dl', limit: 0 }))).toBe('INVALID_INPUT');
    const { job: theirs } = await new OkitClient({ url: t.base, token: t.tokens.otherAdmin }).enqueue({ type: 'dl' });
    await sameAsAbsent((id) => `${API}/jobs/${id}/retry`, theirs.id, 'POST');
    await sameAsAbsent((id) => `${API}/jobs/${id}/prioritize`, theirs.id, 'POST', { priority: 1 });
    await sameAsAbsent((id) => `${API}/jobs/${id}/cancel`, theirs.id, 'POST', { reason: 'x' });
  });

  it('queues: pause and resume (admin) per tenant; list (read); a worker cannot claim a paused type', async () => {
    const { job } = await worker.enqueue({ type: 'pz' });
    const p = await admin.pauseQueue('pz', { reason: 'maintenance' });
    expect(p).toMatchObject({ type: 'pz', changed: true, jobs: 1, paused: { reason: 'maintenance' } });
    const fs = await read.firstSignal(job.id);
    expect(fs.status === 200 && fs.signal.summary).toMatch(/^Paused by token:[0-9a-f-]+: maintenance$/);
    expect(await worker.claim({ workerId: 'w1', types: ['pz'] })).toBeNull();
    // The other tenant's queue of the same type is not paused.
    const otherWorker = new OkitClient({ url: t.base, token: t.tokens.otherAdmin });
    await otherWorker.enqueue({ type: 'pz' });
    expect(await otherWorker.claim({ workerId: 'w9', types: ['pz'] })).not.toBeNull();
    expect((await read.listQueues()).find((q) => q.type === 'pz')).toMatchObject({ paused: { reason: 'maintenance' }, counts: { queued: 1 } });
    expect(await code(worker.pauseQueue('pz'))).toBe('FORBIDDEN');
    expect((await t.post(`${API}/queues/bad%20type/pause`, t.tokens.admin, {})).status).toBe(400);
    expect(await admin.resumeQueue('pz')).toMatchObject({ changed: true, jobs: 1 });
    expect((await worker.claim({ workerId: 'w1', types: ['pz'] }))?.job.id).toBe(job.id);
  });

  it('runs: create (worker, optional source), get with counts, items and a run-level signal, long-poll woken by its jobs, run jobs; foreign is absent', async () => {
    const src = (await read.listSources())[0]!;
    expect(await code(read.createRun())).toBe('FORBIDDEN');
    const { run, created } = await worker.createRun({ sourceId: src.id });
    expect(created).toBe(true);
    expect(run.source_id).toBe(src.id);
    expect(await code(worker.createRun({ sourceId: randomUUID() }))).toBe('SOURCE_NOT_FOUND');
    const empty = (await read.getRun(run.id))!;
    expect(empty.signal).toMatchObject({ kind: 'queued', summary: 'No jobs yet' });
    const ids = [];
    for (let i = 0; i < 3; i++) ids.push((await worker.enqueue({ type: 'rn', runId: run.id })).job.id);
    const s1 = (await read.getRun(run.id))!;
    expect(s1).toMatchObject({ items: { done: 0, total: 3 }, counts: { by_state: { queued: 3 }, by_kind: { queued: 3 } }, signal: { kind: 'queued', summary: '0 of 3 jobs done' } });
    // A long-poll with the current ETag returns as soon as a job of the run changes.
    const t0 = performance.now();
    const waiting = read.getRun(run.id, { etag: s1.etag, wait: 10 });
    let failed: Promise<unknown> = Promise.resolve();
    setTimeout(() => {
      failed = worker.claim({ workerId: 'w1', types: ['rn'] }).then((c) => worker.fail(c!.job.id, { workerId: 'w1', leaseToken: c!.leaseToken, code: 'E', message: 'no', retryable: false }));
    }, 200);
    const s2 = (await waiting)!;
    expect(performance.now() - t0).toBeLessThan(8000);
    expect(s2.etag).not.toBe(s1.etag);
    // The wake may be the claim's change; the fail follows it.
    await failed;
    const s3 = (await read.getRun(run.id))!;
    expect(s3.signal).toMatchObject({ kind: 'started', summary: '1 of 3 jobs done, 1 failed', worst_outcome: { state: 'failed', error_code: 'E' } });
    expect(await read.getRun(run.id, { etag: s3.etag, wait: 0.3 })).toBeNull(); // 304
    const jobs = await read.runJobs(run.id, { state: 'queued' });
    expect(jobs.jobs.length).toBe(2);
    expect((await t.get(`${API}/runs/${run.id}/jobs?run_id=${run.id}`, t.tokens.read)).status).toBe(400);
    const theirs = await new OkitClient({ url: t.base, token: t.tokens.otherAdmin }).createRun();
    await sameAsAbsent((id) => `${API}/runs/${id}`, theirs.run.id);
    await sameAsAbsent((id) => `${API}/runs/${id}/jobs`, theirs.run.id);
    expect((await t.get(`${API}/runs/${run.id}?wait=99`, t.tokens.read)).status).toBe(400);
  });
});
