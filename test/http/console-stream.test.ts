/**
 * The multiplexed first-signal stream (issue 16): GET …/stream/jobs?ids=…|run=… on one SSE
 * connection — every change of 200 jobs, resume by Last-Event-ID without gap or repeat, the id
 * limit at the door (501 and 10,000 ids), foreign ids answered exactly as absent ones, cookie
 * sessions, and waiters released when the stream ends.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ClaimedJob } from '../../src/ledger/ledger.js';
import { etagOf } from '../../src/signals/signal.js';
import { freshDb, type TestDb } from '../helpers/db.js';
import { startTestServer, type TestServer } from '../helpers/serve.js';
import { openSse, type SseConn, type SseEvent } from '../helpers/sse.js';

const MUX = '/api/v1/orchestrator/stream/jobs';

interface Data {
  job_id: string;
  etag: string;
  signal: { kind: string; phase: string; summary: string };
}
const data = (e: SseEvent) => JSON.parse(e.data!) as Data;

describe('multiplexed stream', () => {
  let db: TestDb;
  let t: TestServer;
  beforeAll(async () => {
    db = await freshDb();
    t = await startTestServer(db.url, db.pool, { fallbackPollMs: 200, keepAliveMs: 15_000 });
  });
  afterAll(async () => {
    await t.srv.close();
    await db.drop();
  });

  const auth = (token = t.tokens.admin) => ({ Authorization: `Bearer ${token}` });
  const many = async (n: number, type: string, tenant = 'acme', runId?: string) =>
    (await t.ledger.enqueueMany(tenant, Array.from({ length: n }, (_, i) => ({ type, payload: { i }, runId })))).map((x) => x.job.id);
  /** The next `n` signal events (absent ones and comments skipped). */
  async function take(c: SseConn, n: number, timeoutMs = 20_000): Promise<SseEvent[]> {
    const out: SseEvent[] = [];
    while (out.length < n) {
      const e = await c.nextEvent(timeoutMs);
      if (!e) throw new Error(`stream ended after ${out.length} of ${n} events`);
      if (e.event === 'signal') out.push(e);
    }
    return out;
  }
  /** Nothing more arrives within `ms` (keep-alive comments aside). */
  async function quiet(c: SseConn, ms = 600): Promise<void> {
    const e = await c.nextEvent(ms).catch(() => 'quiet' as const);
    expect(e).toBe('quiet');
  }
  // The ETag a GET of the job answers: the snapshot's, or for a queued job the one naming its live overlay.
  const dbEtag = async (id: string) => {
    const etag = (await fetch(`${t.base}/api/v1/orchestrator/jobs/${id}/first-signal`, { headers: auth() })).headers.get('etag');
    const snap = etagOf(await t.ledger.getSnapshot('acme', id));
    expect(etag!.startsWith(snap.slice(0, -1))).toBe(true); // and it names the stored snapshot
    return etag;
  };

  it('delivers every change of 200 jobs on one connection, each event with its job id and ETag', async () => {
    const type = 'mux-200';
    const ids = await many(200, type);
    const before = t.srv.waiters.size;
    const c = await openSse(`${t.base}${MUX}?ids=${ids.join(',')}`, auth());
    expect(c.status).toBe(200);
    expect(c.headers.get('content-type')).toMatch(/^text\/event-stream/);
    expect(t.srv.waiters.size).toBe(before + 200);
    const steps: Array<[string, () => Promise<unknown>]> = [
      ['queued', async () => undefined],
      ['started', async () => { claims = [...(await t.ledger.claim('acme', { workerId: 'w', types: [type], limit: 100 })), ...(await t.ledger.claim('acme', { workerId: 'w', types: [type], limit: 100 }))]; }],
      ['phase', () => Promise.all(claims.map((cl) => t.ledger.progress('acme', cl.job.id, { workerId: 'w', leaseToken: cl.leaseToken }, { phase: 'fetch', itemsDone: 1, itemsTotal: 2 })))],
      ['succeeded', () => Promise.all(claims.map((cl) => t.ledger.complete('acme', cl.job.id, { workerId: 'w', leaseToken: cl.leaseToken }, { ok: true })))],
    ];
    let claims: ClaimedJob[] = [];
    let lastId = 0n;
    for (const [kind, step] of steps) {
      await step();
      const evs = await take(c, 200);
      const byJob = new Map(evs.map((e) => [data(e).job_id, e]));
      expect(byJob.size, `one event per job at ${kind}`).toBe(200);
      expect([...byJob.keys()].sort()).toEqual([...ids].sort());
      for (const e of evs) {
        const d = data(e);
        expect(d.signal.kind).toBe(kind);
        expect(d.etag).toBe(await dbEtag(d.job_id));
        expect(BigInt(e.id!)).toBeGreaterThan(lastId); // ids only grow
        lastId = BigInt(e.id!);
      }
    }
    await quiet(c);
    c.close();
    for (let i = 0; i < 50 && t.srv.waiters.size > before; i++) await new Promise((r) => setTimeout(r, 20));
    expect(t.srv.waiters.size).toBe(before); // the stream's waiters are gone with it
  }, 60_000);

  it('resumes by Last-Event-ID without gap or repeat', async () => {
    const ids = await many(120, 'mux-resume');
    const first = await openSse(`${t.base}${MUX}?ids=${ids.join(',')}`, auth());
    const got = await take(first, 50);
    first.close();
    const seen = new Map<string, string>(got.map((e) => [data(e).job_id, data(e).etag]));
    // Changes while away: 20 jobs the client has seen, 20 it has not.
    const seenIds = [...seen.keys()].slice(0, 20);
    const unseenIds = ids.filter((id) => !seen.has(id)).slice(0, 20);
    for (const id of [...seenIds, ...unseenIds]) await t.ledger.cancel('acme', id, { actor: 'test', reason: 'resume' });
    const again = await openSse(`${t.base}${MUX}?ids=${ids.join(',')}`, { ...auth(), 'Last-Event-ID': got.at(-1)!.id! });
    const rest = await take(again, 70 + 20); // the 70 never sent, the 20 seen and changed since
    await quiet(again);
    again.close();
    const pairs = new Set([...seen].map(([j, e]) => `${j} ${e}`));
    for (const e of rest) {
      const d = data(e);
      expect(pairs.has(`${d.job_id} ${d.etag}`), `repeated ${d.job_id}`).toBe(false);
      pairs.add(`${d.job_id} ${d.etag}`);
      seen.set(d.job_id, d.etag);
    }
    expect(seen.size).toBe(120); // no gap: every job
    // Each at its current state. A queued job's live position moved with the cancels ahead of it;
    // that sends no event (docs/eta.md), so the stored snapshot's part of the ETag is compared.
    const stored = (e: string | null | undefined) => e?.replace(/-q[^"]*"$/, '"');
    for (const id of ids) expect(stored(seen.get(id)), id).toBe(stored(await dbEtag(id)));
    for (const id of [...seenIds, ...unseenIds]) expect(rest.filter((e) => data(e).job_id === id).map((e) => data(e).signal.kind)).toEqual(['canceled']);
    // A resumed client is not told again about absent ids; a bad cursor is 400.
    const bad = await fetch(`${t.base}${MUX}?ids=${ids[0]}`, { headers: { ...auth(), Accept: 'text/event-stream', 'Last-Event-ID': 'abc' } });
    expect(bad.status).toBe(400);
  }, 60_000);

  it('refuses more than 500 ids (501 in the URL, and 10,000 past the header limit) with 400 TOO_MANY_IDS; a bad id is 400', async () => {
    const ids = (n: number) => Array.from({ length: n }, () => randomUUID()).join(',');
    const ok = await fetch(`${t.base}${MUX}?ids=${ids(500)}`, { headers: auth() }); // JSON read: 500 absent ids
    expect(ok.status).toBe(200);
    expect(((await ok.json()) as { absent: string[] }).absent).toHaveLength(500);
    for (const n of [501, 10_000]) {
      const r = await fetch(`${t.base}${MUX}?ids=${ids(n)}`, { headers: { ...auth(), Accept: 'text/event-stream' } });
      expect(r.status, `${n} ids`).toBe(400);
      expect(((await r.json()) as { error: { code: string } }).error.code).toBe('TOO_MANY_IDS');
    }
    for (const q of ['ids=not-a-uuid', `ids=${randomUUID()},`, '', `ids=${randomUUID()}&run=${randomUUID()}`, `ids=${randomUUID()}&x=1`]) {
      const r = await fetch(`${t.base}${MUX}?${q}`, { headers: auth() });
      expect(r.status, q).toBe(400);
      expect(((await r.json()) as { error: { code: string } }).error.code).toBe('INVALID_INPUT');
    }
  });

  it('hostile ids and cursors are 400 INVALID_INPUT, never a 5xx', async () => {
    const [id] = await many(1, 'mux-hostile');
    for (const q of ['ids=%1b%5b2J', 'ids=%00', `ids=${id!.toUpperCase()}`, `ids=${'x'.repeat(5000)}`, 'ids=1e400', 'ids=,,,', `ids=${id}&ids=${id}`, 'run=%ED%A0%80', 'run=']) {
      const r = await fetch(`${t.base}${MUX}?${q}`, { headers: { ...auth(), Accept: 'text/event-stream' } });
      expect(r.status, q).toBe(400);
      expect(((await r.json()) as { error: { code: string } }).error.code, q).toBe('INVALID_INPUT');
    }
    for (const cursor of ['-1', '1e400', '9'.repeat(30), 'é'.repeat(50), ' 1', '0x10']) {
      const r = await fetch(`${t.base}${MUX}?ids=${id}&last_event_id=${encodeURIComponent(cursor)}`, { headers: { ...auth(), Accept: 'text/event-stream' } });
      expect(r.status, cursor).toBe(400);
    }
    // The same id twice is followed once.
    const c = await openSse(`${t.base}${MUX}?ids=${id},${id}`, auth());
    expect(data((await take(c, 1))[0]!).job_id).toBe(id);
    await quiet(c, 300);
    c.close();
  });

  it('answers a foreign id exactly as an absent one', async () => {
    const [own] = await many(1, 'mux-own');
    const [foreign] = await many(1, 'mux-foreign', 'other');
    const absent = randomUUID();
    const c = await openSse(`${t.base}${MUX}?ids=${own},${foreign},${absent}`, auth());
    const evs: SseEvent[] = [];
    while (evs.length < 3) evs.push((await c.nextEvent(5000))!);
    await quiet(c, 300);
    c.close();
    const absents = evs.filter((e) => e.event === 'absent');
    expect(absents.map((e) => e.data).sort()).toEqual([`{"job_id":"${absent}"}`, `{"job_id":"${foreign}"}`].sort());
    expect(absents.every((e) => e.id === undefined)).toBe(true);
    const signals = evs.filter((e) => e.event === 'signal');
    expect(signals.map((e) => data(e).job_id)).toEqual([own]);
    expect(JSON.stringify(evs)).not.toContain('mux-foreign');
    // The other tenant's changes never wake or reach this stream.
    const c2 = await openSse(`${t.base}${MUX}?ids=${foreign}`, auth());
    expect((await c2.nextEvent(5000))!.event).toBe('absent');
    await t.ledger.cancel('other', foreign!, { actor: 'test' });
    await quiet(c2, 500);
    c2.close();
  });

  it('sends a keepalive comment when quiet, and survives a server restart by resuming from its cursor', async () => {
    const ids = await many(2, 'mux-keepalive');
    const t2 = await startTestServer(db.url, db.pool, { keepAliveMs: 300, fallbackPollMs: 200 });
    let resumeId = '';
    try {
      const c = await openSse(`${t2.base}${MUX}?ids=${ids.join(',')}`, auth(t2.tokens.read));
      const evs = await take(c, 2);
      resumeId = evs.at(-1)!.id!;
      let comment: SseEvent | null = null;
      while (!comment?.comment) comment = await c.next(3000);
      expect(comment.comment).toBe('keepalive');
      c.close();
    } finally {
      await t2.srv.close();
    }
    // The server is gone; a change happens; the client reconnects to another with its cursor.
    await t.ledger.cancel('acme', ids[0]!, { actor: 'test' });
    const again = await openSse(`${t.base}${MUX}?ids=${ids.join(',')}`, { ...auth(), 'Last-Event-ID': resumeId });
    const [ev] = await take(again, 1);
    expect(data(ev!)).toMatchObject({ job_id: ids[0], signal: { kind: 'canceled' } });
    await quiet(again, 400);
    again.close();
  });

  it('follows a run, jobs added later included; a foreign run is 404 as an absent one; a cookie session works', async () => {
    const { run } = await t.ledger.createRun('acme', {});
    const ids = await many(3, 'mux-run', 'acme', run.id);
    const res = await fetch(`${t.base}/api/v1/console/session`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ token: t.tokens.read }) });
    const cookie = /^(okit_session=[^;]+)/.exec(res.headers.get('set-cookie')!)![1]!;
    const c = await openSse(`${t.base}${MUX}?run=${run.id}`, { Cookie: cookie });
    expect(c.status).toBe(200);
    expect((await take(c, 3)).map((e) => data(e).job_id).sort()).toEqual([...ids].sort());
    const [late] = await many(1, 'mux-run', 'acme', run.id);
    expect(data((await take(c, 1))[0]!).job_id).toBe(late);
    c.close();
    const { run: theirs } = await t.ledger.createRun('other', {});
    const f = await fetch(`${t.base}${MUX}?run=${theirs.id}`, { headers: { ...auth(), Accept: 'text/event-stream' } });
    const missing = randomUUID();
    const a = await fetch(`${t.base}${MUX}?run=${missing}`, { headers: { ...auth(), Accept: 'text/event-stream' } });
    expect(f.status).toBe(404);
    expect((await f.text()).replaceAll(theirs.id, 'ID')).toBe((await a.text()).replaceAll(missing, 'ID'));
    const none = await fetch(`${t.base}${MUX}?run=${run.id}`, { headers: { Accept: 'text/event-stream' } });
    expect(none.status).toBe(401);
  });
  it('caps open streams per session and per token (429 TOO_MANY_STREAMS, Retry-After) and server-wide; a closed stream frees its slot', async () => {
    const [id] = await many(1, 'mux-cap');
    const signIn = async () => {
      const res = await fetch(`${t.base}/api/v1/console/session`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ token: t.tokens.read }) });
      return /^(okit_session=[^;]+)/.exec(res.headers.get('set-cookie')!)![1]!;
    };
    const url = `${t.base}${MUX}?ids=${id}`;
    const a = await signIn();
    const open: SseConn[] = [];
    for (let i = 0; i < 4; i++) open.push(await openSse(url, { Cookie: a }));
    expect(open.map((c) => c.status)).toEqual([200, 200, 200, 200]);
    const over = await fetch(url, { headers: { Cookie: a, Accept: 'text/event-stream' } });
    expect(over.status).toBe(429);
    expect(over.headers.get('retry-after')).toBe('5');
    expect(((await over.json()) as { error: { code: string } }).error.code).toBe('TOO_MANY_STREAMS');
    // Another session of the same token, and the bearer token itself, have their own slots; a one-shot JSON read needs none.
    const b = await openSse(url, { Cookie: await signIn() });
    expect(b.status).toBe(200);
    expect((await fetch(url, { headers: { Cookie: a } })).status).toBe(200);
    const bearer: SseConn[] = [];
    for (let i = 0; i < 4; i++) bearer.push(await openSse(url, auth(t.tokens.read)));
    expect((await fetch(url, { headers: { ...auth(t.tokens.read), Accept: 'text/event-stream' } })).status).toBe(429);
    // Closing one gives its slot back once the server sees the close.
    open.pop()!.close();
    let again: SseConn | undefined;
    for (let i = 0; i < 50 && !again; i++) {
      const c = await openSse(url, { Cookie: a });
      if (c.status === 200) again = c;
      else await new Promise((r) => setTimeout(r, 100));
    }
    expect(again?.status).toBe(200);
    for (const c of [...open, ...bearer, b, again!]) c.close();

    // Server-wide: a server holding at most 2 streams answers the third 429, whoever asks.
    // Per-job SSE streams have their own per-token cap (64 by default; 1 here).
    const t2 = await startTestServer(db.url, db.pool, { maxStreams: 2, maxJobStreamsPerPrincipal: 1 });
    try {
      const [x, y] = [await openSse(url.replace(t.base, t2.base), auth(t2.tokens.read)), await openSse(url.replace(t.base, t2.base), auth(t2.tokens.admin))];
      const z = await fetch(url.replace(t.base, t2.base), { headers: { ...auth(t2.tokens.read), Accept: 'text/event-stream' } });
      expect([x.status, y.status, z.status]).toEqual([200, 200, 429]);
      const one = `${t2.base}/api/v1/orchestrator/stream/jobs/${id}/first-signal`;
      const j1 = await openSse(one, auth(t2.tokens.read));
      const j2 = await fetch(one, { headers: { ...auth(t2.tokens.read), Accept: 'text/event-stream' } });
      expect([j1.status, j2.status, j2.headers.get('retry-after')]).toEqual([200, 429, '5']);
      j1.close();
      x.close();
      y.close();
    } finally {
      await t2.srv.close();
    }
  });
  it('a Last-Event-ID past the tenant\'s ledger head (forged) is 400, not a stream that stays silent; the head itself resumes', async () => {
    const [id] = await many(1, 'mux-future');
    const head = BigInt(String((await db.pool.query("SELECT pos FROM okit.ledger_heads WHERE tenant = 'acme'")).rows[0].pos));
    const url = `${t.base}${MUX}?ids=${id}`;
    for (const headers of [{ 'Last-Event-ID': String(head + 1000n) }, {}]) {
      const u = 'Last-Event-ID' in headers ? url : `${url}&last_event_id=${head + 1n}`;
      const r = await fetch(u, { headers: { ...auth(), Accept: 'text/event-stream', ...headers } });
      expect(r.status).toBe(400);
      const e = ((await r.json()) as { error: { code: string; details: { field: string } } }).error;
      expect([e.code, e.details.field]).toEqual(['INVALID_INPUT', 'last_event_id']);
    }
    const ok = await openSse(url, { ...auth(), 'Last-Event-ID': String(head) });
    expect(ok.status).toBe(200);
    await t.ledger.claim('acme', { workerId: 'w', types: ['mux-future'], limit: 1 });
    expect(data((await take(ok, 1))[0]!).signal.kind).toBe('started');
    ok.close();
  });
});
