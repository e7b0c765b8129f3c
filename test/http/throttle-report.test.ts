/**
 * Upstream throttles over HTTP: `POST /throttles/report` penalises a host's bucket and answers
 * it; `POST /jobs/{id}/fail` with `upstream` schedules the retry and penalises the bucket in one
 * transaction. Bad input is a typed 4xx with nothing written; a foreign job is 404 as if absent.
 * Also: lease calls on a canceled job answer 409 JOB_CANCELED.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OkitClient } from '../../src/worker/client.js';
import { freshDb, type TestDb } from '../helpers/db.js';
import { startTestServer, type TestServer } from '../helpers/serve.js';

const A = '/api/v1/orchestrator';

describe('upstream throttles over HTTP', () => {
  let db: TestDb;
  let t: TestServer;
  let w: OkitClient;
  let otherJob: string;
  let sourceId: string;
  beforeAll(async () => {
    db = await freshDb();
    t = await startTestServer(db.url, db.pool);
    w = new OkitClient({ url: t.base, token: t.tokens.worker });
    otherJob = (await t.ledger.enqueue('other', { type: 'x' })).job.id;
    sourceId = (await t.ledger.createSource('acme', { name: 'feed', host: 'feed.example' })).id;
    await t.ledger.configureThrottle('acme', 'feed.example', { capacity: 4, refillPerSec: 2 });
  });
  afterAll(async () => {
    await t.srv.close();
    await db.drop();
  });

  const events = async () => (await db.pool.query("SELECT host, data FROM okit.throttle_events WHERE tenant = 'acme' AND event = 'upstream_throttled' ORDER BY pos")).rows;
  const errorOf = async (r: Response) => ((await r.json()) as { error: { code: string; details?: { field?: string } } }).error;

  it('report: empties the bucket, halves its refill, pauses it for Retry-After, and answers the bucket', async () => {
    const { job } = await w.enqueue({ type: 'feed', sourceId });
    const before = Date.now();
    const bucket = await w.reportThrottle({ host: 'feed.example', status: 429, retryAfterSeconds: 30, workerId: 'w1', jobId: job.id });
    expect(bucket).toMatchObject({ host: 'feed.example', capacity: '4', base_refill_per_sec: '2', refill_per_sec: '1', tokens: '0' });
    expect(Date.parse(bucket.penalty_until!)).toBeGreaterThanOrEqual(before + 29_000);
    const ev = (await events()).at(-1)!;
    expect(ev.host).toBe('feed.example');
    expect(JSON.parse(ev.data)).toMatchObject({ status: 429, retry_after_seconds: '30', worker_id: 'w1', job_id: job.id, refill_before: '2', refill_after: '1' });
    // Without Retry-After (a bare 503): no pause, the refill halves again.
    const b2 = await w.reportThrottle({ host: 'feed.example', status: 503, workerId: 'w1' });
    expect(b2.refill_per_sec).toBe('0.5');
    // A host without a bucket gets the default one, then its penalty.
    expect(await w.reportThrottle({ host: 'New.Example:8443', status: 429, retryAfterSeconds: 1, workerId: 'w1' })).toMatchObject({ host: 'new.example:8443', capacity: '10', refill_per_sec: '2.5' });
  });

  it('report: bad input is a typed 400 naming the field, a foreign job 404, a read token 403; nothing written', async () => {
    const n = (await events()).length;
    const ok = { host: 'feed.example', status: 429, retry_after_seconds: 5, worker_id: 'w1' };
    const cases: Array<[Record<string, unknown>, number, string, string?]> = [
      [{ ...ok, host: undefined }, 400, 'INVALID_INPUT', 'host'],
      [{ ...ok, host: 'bad host!' }, 400, 'INVALID_INPUT', 'host'],
      [{ ...ok, status: undefined }, 400, 'INVALID_INPUT', 'status'],
      [{ ...ok, status: 42 }, 400, 'INVALID_INPUT', 'status'],
      [{ ...ok, status: '429' }, 400, 'INVALID_INPUT', 'status'],
      [{ ...ok, retry_after_seconds: -1 }, 400, 'INVALID_INPUT', 'retry_after_seconds'],
      [{ ...ok, retry_after_seconds: 86401 }, 400, 'INVALID_INPUT', 'retry_after_seconds'],
      [{ ...ok, worker_id: undefined }, 400, 'INVALID_INPUT', 'worker_id'],
      [{ ...ok, job_id: 'nope' }, 400, 'INVALID_INPUT', 'job_id'],
      [{ ...ok, job_id: otherJob }, 404, 'JOB_NOT_FOUND'],
      [{ ...ok, job_id: '00000000-0000-4000-8000-000000000000' }, 404, 'JOB_NOT_FOUND'],
    ];
    for (const [body, status, code, field] of cases) {
      const r = await t.post(`${A}/throttles/report`, t.tokens.worker, body);
      expect(r.status, JSON.stringify(body)).toBe(status);
      const e = await errorOf(r);
      expect(e.code).toBe(code);
      if (field) expect(e.details?.field).toBe(field);
    }
    const foreign = await errorOf(await t.post(`${A}/throttles/report`, t.tokens.worker, { ...ok, job_id: otherJob }));
    const absent = await errorOf(await t.post(`${A}/throttles/report`, t.tokens.worker, { ...ok, job_id: '00000000-0000-4000-8000-000000000000' }));
    expect(foreign.code).toBe(absent.code); // another tenant's job is exactly "not found"
    expect((await t.post(`${A}/throttles/report`, t.tokens.read, ok)).status).toBe(403);
    expect((await t.post(`${A}/throttles/report`, t.tokens.worker, '{"host":"a","host":"b"}')).status).toBe(400); // strict body
    expect((await events()).length).toBe(n);
  });

  it('fail with upstream: the retry and the penalty in one transaction; the retry waits at least Retry-After', async () => {
    const src2 = (await t.ledger.createSource('acme', { name: 'feed2', host: 'feed2.example' })).id;
    const { job } = await w.enqueue({ type: 'feed-fail', sourceId: src2 });
    const c = await w.claim({ workerId: 'w1', types: ['feed-fail'] });
    const now = Date.now();
    const r = await w.fail(job.id, { workerId: 'w1', leaseToken: c!.leaseToken, code: 'UPSTREAM_429', message: 'feed.example: 429', upstream: { status: 429, retryAfterSeconds: 45 } });
    expect(r.signal.kind).toBe('queued');
    const j = await w.getJob(job.id);
    expect(j.state).toBe('queued');
    expect(Date.parse(j.not_before)).toBeGreaterThanOrEqual(now + 44_000);
    const hist = (await w.history(job.id)).at(-1)!;
    expect(hist.event).toBe('retry_scheduled');
    expect(hist.data.upstream).toEqual({ status: 429, retry_after_seconds: '45', host: 'feed2.example' });
    // One transaction: the throttle event and the history row took adjacent positions of one batch.
    const { rows } = await db.pool.query(
      `SELECT e.pos AS epos, h.pos AS hpos, e.data FROM okit.throttle_events e, okit.job_history h
       WHERE e.tenant = 'acme' AND e.event = 'upstream_throttled' AND e.data->>'job_id' = $1::text AND h.job_id = $1::uuid AND h.event = 'retry_scheduled'`,
      [job.id],
    );
    expect(rows.length).toBe(1);
    expect(Math.abs(Number(rows[0].epos) - Number(rows[0].hpos))).toBe(1);
    const { rows: tx } = await db.pool.query(
      `SELECT (SELECT xmin::text FROM okit.throttles WHERE tenant = 'acme' AND host = 'feed2.example') AS bucket_x, (SELECT xmin::text FROM okit.jobs WHERE id = $1) AS job_x`,
      [job.id],
    );
    expect(tx[0].bucket_x).toBe(tx[0].job_x);
  });

  it('fail with upstream: host as given; a sourceless job without host is 400 with nothing written; terminal fails penalise too', async () => {
    const { job } = await w.enqueue({ type: 'nosrc' });
    const c = await w.claim({ workerId: 'w1', types: ['nosrc'] });
    const lease = { workerId: 'w1', leaseToken: c!.leaseToken };
    const n = (await events()).length;
    const bad: Array<[unknown, string]> = [
      [{ status: 429 }, 'upstream.host'],
      [{ status: 1000, host: 'x.example' }, 'upstream.status'],
      [{ host: 'x.example' }, 'upstream.status'],
      [{ status: 429, retry_after_seconds: 'soon', host: 'x.example' }, 'upstream.retry_after_seconds'],
      [{ status: 429, host: 'no such host' }, 'upstream.host'],
      ['429', 'upstream'],
    ];
    for (const [upstream, field] of bad) {
      const r = await t.post(`${A}/jobs/${job.id}/fail`, t.tokens.worker, { worker_id: 'w1', lease_token: c!.leaseToken, error: { code: 'E', message: 'x' }, upstream });
      expect(r.status, JSON.stringify(upstream)).toBe(400);
      const e = await errorOf(r);
      expect([e.code, e.details?.field]).toEqual(['INVALID_INPUT', field]);
    }
    expect((await events()).length).toBe(n);
    expect((await w.getJob(job.id)).state).toBe('running');
    await w.fail(job.id, { ...lease, code: 'E_403', message: 'forbidden', retryable: false, upstream: { status: 503, host: 'mirror.example' } });
    expect((await w.getJob(job.id)).state).toBe('failed');
    expect((await events()).at(-1)!.host).toBe('mirror.example');
  });

  it('fail with upstream on a foreign job is 404 and writes nothing', async () => {
    const n = (await events()).length;
    const r = await t.post(`${A}/jobs/${otherJob}/fail`, t.tokens.worker, { worker_id: 'w1', lease_token: 'A'.repeat(22), error: { code: 'E', message: 'x' }, upstream: { status: 429, host: 'x.example' } });
    expect(r.status).toBe(404);
    expect((await errorOf(r)).code).toBe('JOB_NOT_FOUND');
    expect((await events()).length).toBe(n);
  });

  it('heartbeat, progress, complete and fail on a canceled job answer 409 JOB_CANCELED', async () => {
    const admin = new OkitClient({ url: t.base, token: t.tokens.admin });
    const { job } = await w.enqueue({ type: 'cx' });
    const c = await w.claim({ workerId: 'w1', types: ['cx'] });
    const lease = { workerId: 'w1', leaseToken: c!.leaseToken };
    await admin.cancel(job.id, { reason: 'operator said so' });
    for (const call of [
      () => w.heartbeat(job.id, lease),
      () => w.progress(job.id, { ...lease, phase: 'fetch' }),
      () => w.complete(job.id, lease),
      () => w.fail(job.id, { ...lease, code: 'E', message: 'x' }),
    ])
      await expect(call()).rejects.toMatchObject({ code: 'JOB_CANCELED', details: { status: 409 } });
  });
});
