import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freshDb, type TestDb } from '../helpers/db.js';
import { FS, STREAM, startTestServer, type TestServer } from '../helpers/serve.js';
import { openSse } from '../helpers/sse.js';

describe('SSE first signals', () => {
  let db: TestDb;
  let t: TestServer;
  beforeAll(async () => {
    db = await freshDb();
    t = await startTestServer(db.url, db.pool, { keepAliveMs: 300 });
  });
  afterAll(async () => {
    await t.srv.close();
    await db.drop();
  });
  const auth = () => ({ Authorization: `Bearer ${t.tokens.read}` });

  it('streams each change with id = ETag, resumes with Last-Event-ID (no repeat, no gap), ends with done', async () => {
    const { job } = await t.ledger.enqueue('acme', { type: 'sse' });
    const s1 = await openSse(t.base + STREAM(job.id), auth());
    expect(s1.status).toBe(200);
    expect(s1.headers.get('content-type')).toMatch(/^text\/event-stream/);
    expect(s1.headers.get('x-accel-buffering')).toBe('no');
    const retry = await s1.next();
    expect(retry?.retry).toBe('2000');
    const e1 = await s1.nextEvent();
    expect(e1?.event).toBe('signal');
    expect(JSON.parse(e1!.data!).kind).toBe('queued');
    const etag1 = (await t.get(FS(job.id), t.tokens.read)).headers.get('etag');
    expect(e1!.id).toBe(etag1);

    await t.ledger.claim('acme', { workerId: 'w1', types: ['sse'] });
    const e2 = await s1.nextEvent();
    expect(JSON.parse(e2!.data!).kind).toBe('started');
    s1.close();

    // Missed while disconnected: one change. Resume from e2 → exactly that change, first.
    await t.ledger.progress('acme', job.id, 'w1', { phase: 'analyze', summary: 'Scanning image layers', itemsDone: 47, itemsTotal: 100 });
    const s2 = await openSse(t.base + STREAM(job.id), { ...auth(), 'Last-Event-ID': e2!.id! });
    const e3 = await s2.nextEvent();
    expect(e3!.id).not.toBe(e2!.id);
    expect(JSON.parse(e3!.data!).summary).toBe('Scanning image layers (47%)');
    s2.close();

    // Resume at the current ETag → nothing repeated; the next event is the next change.
    const s3 = await openSse(t.base + STREAM(job.id), { ...auth(), 'Last-Event-ID': e3!.id! });
    await s3.next(); // retry:
    const ka = await s3.next(); // nothing to send: a keep-alive comment comes first
    expect(ka?.comment).toBe('keep-alive');
    await t.ledger.complete('acme', job.id, 'w1');
    const e4 = await s3.nextEvent();
    expect(e4?.event).toBe('done');
    expect(JSON.parse(e4!.data!).kind).toBe('succeeded');
    expect(await s3.nextEvent()).toBeNull(); // closed by the server

    // Resuming after done: 204, which stops EventSource from reconnecting.
    const s4 = await openSse(t.base + STREAM(job.id), { ...auth(), 'Last-Event-ID': e4!.id! });
    expect(s4.status).toBe(204);
    // A stale id on a finished job: the terminal event at once.
    const s5 = await openSse(t.base + STREAM(job.id), { ...auth(), 'Last-Event-ID': e1!.id! });
    const e5 = await s5.nextEvent();
    expect(e5?.event).toBe('done');
    expect(e5?.id).toBe(e4!.id);
    expect(await s5.nextEvent()).toBeNull();
  });

  it('gives long-poll behaviour to a client that does not accept event streams', async () => {
    const { job } = await t.ledger.enqueue('acme', { type: 'nosse' });
    const r = await t.get(STREAM(job.id), t.tokens.read, { Accept: 'application/json' });
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toMatch(/^application\/json/);
    const etag = r.headers.get('etag')!;
    const r2 = await t.get(STREAM(job.id) + '?wait=0.2', t.tokens.read, { Accept: 'application/json', 'If-None-Match': etag });
    expect(r2.status).toBe(304);
  });

  it('refuses before streaming: 401 without a token, 404 for a foreign job, as JSON', async () => {
    const { job } = await t.ledger.enqueue('acme', { type: 'sse-auth' });
    const a = await t.get(STREAM(job.id), null, { Accept: 'text/event-stream' });
    expect(a.status).toBe(401);
    expect((await a.json()).error.code).toBe('UNAUTHORIZED');
    const f = await t.get(STREAM(job.id), t.tokens.otherRead, { Accept: 'text/event-stream' });
    expect(f.status).toBe(404);
    expect((await f.json()).error.code).toBe('JOB_NOT_FOUND');
  });
});
