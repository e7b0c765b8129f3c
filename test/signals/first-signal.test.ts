import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Ledger } from '../../src/ledger/ledger.js';
import { ManualClock } from '../../src/util/clock.js';
import { freshDb, type TestDb } from '../helpers/db.js';
import { FS, startTestServer, type TestServer } from '../helpers/serve.js';

describe('first-signal endpoint', () => {
  let db: TestDb;
  let t: TestServer;
  beforeAll(async () => {
    db = await freshDb();
    t = await startTestServer(db.url, db.pool, { sweepMs: 200 });
  });
  afterAll(async () => {
    await t.srv.close();
    await db.drop();
  });

  it('returns the signal with ETag, Cache-Control and X-Signal-Source, and 304 for the current ETag', async () => {
    const { job } = await t.ledger.enqueue('acme', { type: 'scan' });
    const r = await t.get(FS(job.id), t.tokens.read);
    expect(r.status).toBe(200);
    expect(r.headers.get('cache-control')).toBe('private, max-age=1, stale-while-revalidate=5');
    expect(r.headers.get('x-signal-source')).toBe('snapshot');
    const etag = r.headers.get('etag')!;
    // A queued job's ETag names its live position and ETA too (test/signals/live-queue.test.ts).
    expect(etag).toMatch(/^"1-[0-9a-f]{16}-q1-ex"$/);
    const body = await r.json();
    expect(Object.keys(body).sort()).toEqual(['diagnostics', 'eta_seconds', 'kind', 'last_known_outcome', 'live', 'next_actions', 'phase', 'summary']);
    expect(body.kind).toBe('queued');
    expect(body.summary).toBe('Waiting in queue (position: 1); no ETA yet: no scan job has succeeded');

    const nm = await t.get(FS(job.id), t.tokens.read, { 'If-None-Match': etag });
    expect(nm.status).toBe(304);
    expect(nm.headers.get('etag')).toBe(etag);
    expect(nm.headers.get('cache-control')).toBe('private, max-age=1, stale-while-revalidate=5');
    expect(await nm.text()).toBe('');

    // A stale ETag gets the current signal.
    const other = await t.get(FS(job.id), t.tokens.read, { 'If-None-Match': '"0-0000000000000000"' });
    expect(other.status).toBe(200);
  });

  it('gives two ETags for two changes within one millisecond (same timestamp even)', async () => {
    // Frozen at the real present: a frozen clock in the past would make the lease already expired
    // for the server's lease sweep (wall clock), which could append a row of its own mid-test.
    const frozen = new Ledger(db.pool, { clock: new ManualClock(BigInt(Date.now()) * 1000n) });
    const { job } = await frozen.enqueue('acme', { type: 'frozen' });
    await frozen.claim('acme', { workerId: 'w1', types: ['frozen'] });
    await frozen.progress('acme', job.id, 'w1', { phase: 'analyze', itemsDone: 1, itemsTotal: 10 });
    const a = await t.get(FS(job.id), t.tokens.read);
    const etagA = a.headers.get('etag')!;
    await frozen.progress('acme', job.id, 'w1', { phase: 'analyze', itemsDone: 1, itemsTotal: 10 }); // same data, same instant
    // A long-poll, as clients do: a plain GET may be served from the ≤ 1 s cache until the NOTIFY lands.
    const b = await t.get(FS(job.id) + '?wait=10', t.tokens.read, { 'If-None-Match': etagA });
    expect(b.status).toBe(200);
    expect(b.headers.get('etag')).not.toBe(etagA);
    const h = await frozen.history('acme', job.id);
    expect(h[h.length - 1]!.at).toBe(h[h.length - 2]!.at);
  });

  it('long-poll is woken by a transition (NOTIFY) and returns the new ETag', async () => {
    const { job } = await t.ledger.enqueue('acme', { type: 'lp' });
    const first = await t.get(FS(job.id), t.tokens.read);
    const etag = first.headers.get('etag')!;
    const t0 = performance.now();
    const pending = t.get(FS(job.id) + '?wait=20', t.tokens.read, { 'If-None-Match': etag });
    await new Promise((r) => setTimeout(r, 300));
    await t.ledger.claim('acme', { workerId: 'w1', types: ['lp'] });
    const r = await pending;
    const elapsed = performance.now() - t0;
    expect(r.status).toBe(200);
    expect(r.headers.get('etag')).not.toBe(etag);
    expect((await r.json()).kind).toBe('started');
    // Woken by the notification, long before the 20 s bound (no polling while LISTEN is up).
    expect(elapsed).toBeLessThan(10_000);
  });

  it('long-poll times out with 304 and the same ETag', async () => {
    const { job } = await t.ledger.enqueue('acme', { type: 'lp2' });
    const etag = (await t.get(FS(job.id), t.tokens.read)).headers.get('etag')!;
    const t0 = performance.now();
    const r = await t.get(FS(job.id) + '?wait=0.5', t.tokens.read, { 'If-None-Match': etag });
    expect(r.status).toBe(304);
    expect(r.headers.get('etag')).toBe(etag);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(450);
  });

  it('serves cold_start when the snapshot row is missing, and failure_index when a signature shaped it', async () => {
    const { job } = await t.ledger.enqueue('acme', { type: 'cold' });
    const before = await t.get(FS(job.id), t.tokens.read);
    const etag = before.headers.get('etag')!;
    const bytes = await before.text();
    await db.pool.query('DELETE FROM okit.first_signal_snapshots WHERE job_id = $1', [job.id]);
    await new Promise((r) => setTimeout(r, 1100)); // past the 1 s cache
    const r = await t.get(FS(job.id), t.tokens.read);
    expect(r.status).toBe(200);
    expect(r.headers.get('x-signal-source')).toBe('cold_start');
    expect(r.headers.get('etag')).toBe(etag);
    expect(await r.text()).toBe(bytes); // one ETag, one representation, whatever the source

    await t.ledger.addFailureSignature('acme', { pattern: { error_code: 'E_DISK' }, outcome: { likely_cause: 'disk full', suggested_action: 'free space' } });
    const { job: j2 } = await t.ledger.enqueue('acme', { type: 'sig' });
    await t.ledger.claim('acme', { workerId: 'w1', types: ['sig'] });
    await t.ledger.fail('acme', j2.id, 'w1', { code: 'E_DISK', message: 'no space', retryable: false });
    const f = await t.get(FS(j2.id), t.tokens.read);
    expect(f.headers.get('x-signal-source')).toBe('failure_index');
    expect((await f.json()).last_known_outcome.likely_cause).toBe('disk full');
  });

  it("isolates tenants: another tenant's job is 404 exactly like a missing one", async () => {
    const { job } = await t.ledger.enqueue('acme', { type: 'iso' });
    const missing = '00000000-0000-4000-8000-000000000000';
    for (const path of [FS(job.id), `/api/v1/orchestrator/jobs/${job.id}`]) {
      const foreign = await t.get(path, t.tokens.otherRead);
      const absent = await t.get(path.replace(job.id, missing), t.tokens.otherRead);
      expect(foreign.status).toBe(404);
      expect(absent.status).toBe(404);
      const fb = await foreign.json();
      const ab = await absent.json();
      expect(fb.error.code).toBe('JOB_NOT_FOUND');
      expect(JSON.stringify(fb).replaceAll(job.id, 'X')).toBe(JSON.stringify(ab).replaceAll(missing, 'X'));
    }
    const cancel = await t.post(`/api/v1/orchestrator/jobs/${job.id}/cancel`, t.tokens.otherAdmin, {});
    expect(cancel.status).toBe(404);
    expect((await t.ledger.getJob('acme', job.id)).state).toBe('queued');
  });

  it('returns abandoned leases to the queue by itself (sweeper), and a long-poll sees it', async () => {
    const { job } = await t.ledger.enqueue('acme', { type: 'abandon' });
    await t.ledger.claim('acme', { workerId: 'gone', types: ['abandon'], leaseSeconds: 1 });
    const etag = (await t.get(FS(job.id), t.tokens.read)).headers.get('etag')!;
    const r = await t.get(FS(job.id) + '?wait=10', t.tokens.read, { 'If-None-Match': etag });
    expect(r.status).toBe(200);
    expect((await r.json()).summary).toBe('Lease on gone expired; requeued (attempt 1 of 5 used); no ETA yet: no abandon job has succeeded');
  });

  it('has /healthz and /readyz', async () => {
    expect((await t.get('/healthz', null)).status).toBe(200);
    const r = await t.get('/readyz', null);
    expect(r.status).toBe(200);
    expect((await r.json()).listener).toBe(true);
  });
});

describe('graceful close', () => {
  it('answers pending long-polls and ends SSE streams, then stops', async () => {
    const db = await freshDb();
    const t = await startTestServer(db.url, db.pool);
    try {
      const { job } = await t.ledger.enqueue('acme', { type: 'bye' });
      const etag = (await t.get(FS(job.id), t.tokens.read)).headers.get('etag')!;
      const lp = t.get(FS(job.id) + '?wait=30', t.tokens.read, { 'If-None-Match': etag });
      const sse = await t.get(`/api/v1/orchestrator/stream/jobs/${job.id}/first-signal`, t.tokens.read, { Accept: 'text/event-stream' });
      expect(sse.status).toBe(200);
      const text = sse.text();
      await new Promise((r) => setTimeout(r, 200));
      const t0 = performance.now();
      await t.srv.close();
      const r = await lp;
      expect(r.status).toBe(304);
      expect(r.headers.get('etag')).toBe(etag);
      expect(await text).toContain('event: signal');
      expect(performance.now() - t0).toBeLessThan(5000);
      expect(t.srv.listener.ready).toBe(false);
    } finally {
      await t.srv.close();
      await db.drop();
    }
  });
});
