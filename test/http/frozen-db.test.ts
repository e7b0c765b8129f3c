/**
 * A hung database (finding 2): the test's OWN Postgres (never the shared cluster) is frozen
 * with SIGSTOP for about 10 s while the server keeps taking requests. Every answer must come
 * within its documented bound (README, Limits and timeouts): long-polls at S + jitter from the
 * last known ETag or 503, other calls 503 DB_UNAVAILABLE, an unknown token 503 (not a hang,
 * not a 401), /readyz 503 within a few seconds, the LISTEN probe noticing; and everything
 * back by itself after SIGCONT. Never a 500. The freeze is bounded and always undone.
 */
import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { EmbeddedPostgres, tempHome } from '../../src/db/embedded.js';
import { migrate } from '../../src/db/migrate.js';
import { createPool, SERVE_DB_TIMEOUTS } from '../../src/db/pool.js';
import { createToken } from '../../src/http/tokens.js';
import { clusterPids, freeze, thaw } from '../helpers/freeze.js';
import { FS, STREAM, startTestServer } from '../helpers/serve.js';
import { openSse, type SseConn } from '../helpers/sse.js';

const A = '/api/v1/orchestrator';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** okit serve's pool bounds a query at 6 s (README, Limits and timeouts): a call that needs the database answers within that, plus slack. */
const DB_CALL_BOUND_MS = 8000;
/** The freeze never lasts longer than this, whatever the test awaits (a hang on unfixed code included). */
const MAX_FREEZE_MS = 12_000;

interface Timed {
  status: number;
  ms: number;
  code?: string;
  source?: string | null;
}

describe('a frozen database (SIGSTOP of the test\'s own Postgres)', () => {
  it('every answer is bounded, none is a 500, and all comes back after SIGCONT', { timeout: 120_000 }, async () => {
    const pg = new EmbeddedPostgres(tempHome('okit-freeze-'));
    await pg.start();
    const url = pg.url();
    const pool = createPool(url, { max: 10, timeouts: SERVE_DB_TIMEOUTS }); // as `okit serve` has it
    const t = await migrate(url)
      .then(() => startTestServer(url, pool))
      .catch(async (e) => {
        await pool.end().catch(() => undefined);
        await pg.destroy();
        fs.rmSync(pg.home, { recursive: true, force: true });
        throw e;
      });
    let pids: number[] = [];
    let sse: SseConn | undefined;
    let streamedId = '';
    let watchdog: NodeJS.Timeout | undefined;
    const statuses: number[] = [];
    const timed = async (f: () => Promise<Response>): Promise<Timed> => {
      const t0 = performance.now();
      const r = await f();
      const text = await r.text();
      statuses.push(r.status);
      let code: string | undefined;
      if (r.status >= 400) {
        expect(r.headers.get('content-type'), text).toMatch(/^application\/json/);
        const b = JSON.parse(text);
        code = b.error?.code ?? (b.ready === false ? 'NOT_READY' : undefined); // /readyz answers its state
        expect(code, text).toBeDefined();
      }
      return { status: r.status, ms: performance.now() - t0, code, source: r.headers.get('x-signal-source') };
    };
    /** A new SSE request: timed to its status line (a 200 stream is then closed), its error read as JSON. */
    const timedStream = async (path: string, token: string): Promise<Timed> => {
      const ac = new AbortController();
      const t0 = performance.now();
      const r = await fetch(t.base + path, { headers: { Authorization: `Bearer ${token}`, Accept: 'text/event-stream' }, signal: ac.signal });
      const ms = performance.now() - t0;
      statuses.push(r.status);
      if (r.status === 200) {
        expect(r.headers.get('content-type')).toMatch(/^text\/event-stream/);
        ac.abort();
        return { status: 200, ms, source: r.headers.get('x-signal-source') };
      }
      const b = JSON.parse(await r.text());
      return { status: r.status, ms, code: b.error?.code, source: null };
    };
    try {
      try {
        const { job } = await t.ledger.enqueue('acme', { type: 'frozen' });
        const { job: other } = await t.ledger.enqueue('acme', { type: 'frozen' });
        const first = await t.get(FS(job.id), t.tokens.read);
        const etag = first.headers.get('etag')!;
        // Every other route gets a job of its own: a write sent into the freeze may still commit after it.
        const lease: Record<string, { id: string; lease: { worker_id: string; lease_token: string } }> = {};
        for (const op of ['heartbeat', 'progress', 'complete', 'fail']) {
          const { job: j } = await t.ledger.enqueue('acme', { type: `frozen-${op}` });
          const c = (await t.ledger.claim('acme', { workerId: 'fw', types: [`frozen-${op}`], leaseSeconds: 3600 }))!;
          lease[op] = { id: j.id, lease: { worker_id: 'fw', lease_token: c.leaseToken } };
        }
        const { job: toCancel } = await t.ledger.enqueue('acme', { type: 'frozen-cancel' });
        const { job: streamed } = await t.ledger.enqueue('acme', { type: 'frozen-stream' });
        streamedId = streamed.id;
        const metrics = (await createToken(pool, { tenant: 'ops', scope: 'metrics' })).token;
        const ttfs = { events: [{ surface: 'cli', event_type: 'signal.rendered', ttfs_ms: 12, job_id: job.id }] };
        // Warm the token cache (5 s) for the tokens used first during the freeze, and the metrics.
        await t.get(`${A}/jobs/${job.id}`, t.tokens.worker);
        await t.get(`${A}/jobs/${job.id}`, t.tokens.admin);
        expect((await t.get('/metrics', metrics)).status).toBe(200);
        expect((await t.get('/readyz', null)).status).toBe(200);
        // A stream opened before the freeze: it must stay open through it and resync after.
        sse = await openSse(t.base + STREAM(streamed.id), { Authorization: `Bearer ${t.tokens.read}` });
        expect(sse.status).toBe(200);
        expect((await sse.nextEvent())?.event).toBe('signal');

        pids = clusterPids(pg.dataDir);
        freeze(pids);
        watchdog = setTimeout(() => thaw(pids), MAX_FREEZE_MS);
        const frozenAt = performance.now();
        const since = () => performance.now() - frozenAt;

        // /readyz goes 503 within a few seconds, and the LISTEN probe notices too.
        const readyz = (async () => {
          for (;;) {
            const r = await timed(() => t.get('/readyz', null));
            if (r.status === 503) return since();
            if (since() > 10_000) return Infinity;
            await sleep(100);
          }
        })();
        const listenerLost = (async () => {
          while (t.srv.listener.ready && since() < 15_000) await sleep(100);
          return since();
        })();

        // Every route that needs the database, by the token its callers hold.
        const dbRoutes = (): Array<[string, () => Promise<Timed>]> => [
          ['GET history', () => timed(() => t.get(`${A}/jobs/${job.id}/history`, t.tokens.worker))],
          ['POST claim', () => timed(() => t.post(`${A}/workers/claim`, t.tokens.worker, { worker_id: 'fw', types: ['none-such'] }))],
          ['POST heartbeat', () => timed(() => t.post(`${A}/jobs/${lease.heartbeat!.id}/heartbeat`, t.tokens.worker, lease.heartbeat!.lease))],
          ['POST progress', () => timed(() => t.post(`${A}/jobs/${lease.progress!.id}/progress`, t.tokens.worker, { ...lease.progress!.lease, phase: 'fetch' }))],
          ['POST complete', () => timed(() => t.post(`${A}/jobs/${lease.complete!.id}/complete`, t.tokens.worker, lease.complete!.lease))],
          ['POST fail', () => timed(() => t.post(`${A}/jobs/${lease.fail!.id}/fail`, t.tokens.worker, { ...lease.fail!.lease, error: { code: 'E', message: 'frozen' } }))],
          ['POST cancel', () => timed(() => t.post(`${A}/jobs/${toCancel.id}/cancel`, t.tokens.admin, { reason: 'frozen' }))],
          ['POST telemetry', () => timed(() => t.post(`${A}/telemetry/ttfs`, t.tokens.worker, ttfs))],
        ];
        // Right away (the database not yet known to be down; tokens cached):
        const [[lp, lpCold, getJob, enqueue, unknownToken, healthz, newStream, scrape], others] = await Promise.all([
          Promise.all([
            timed(() => t.get(FS(job.id) + '?wait=2', t.tokens.read, { 'If-None-Match': etag })),
            timed(() => t.get(FS(other.id) + '?wait=2', t.tokens.read, { 'If-None-Match': '"1-0000000000000000"' })),
            timed(() => t.get(`${A}/jobs/${job.id}`, t.tokens.worker)),
            timed(() => t.post(`${A}/jobs`, t.tokens.worker, { type: 'frozen' })),
            timed(() => t.get(FS(job.id), 'okit_' + 'B'.repeat(43))),
            timed(() => t.get('/healthz', null)),
            timedStream(STREAM(other.id), t.tokens.read),
            timed(() => t.get('/metrics', metrics)),
          ]),
          Promise.all(dbRoutes().map(async ([name, f]) => [name, await f()] as const)),
        ]);
        // Every other route: 503 within the bound, never the length of the freeze.
        for (const [name, r] of others) {
          expect(r, name).toMatchObject({ status: 503, code: 'DB_UNAVAILABLE' });
          expect(r.ms, name).toBeLessThan(DB_CALL_BOUND_MS);
        }
        // A new stream: its status line within the bound (200 from what the server last read, or 503).
        expect([200, 503], JSON.stringify(newStream)).toContain(newStream.status);
        if (newStream.status === 503) expect(newStream.code).toBe('DB_UNAVAILABLE');
        expect(newStream.ms).toBeLessThan(DB_CALL_BOUND_MS);
        // /metrics answers from the values it has (a refresh waits at most 250 ms).
        expect(scrape.status).toBe(200);
        expect(scrape.ms).toBeLessThan(DB_CALL_BOUND_MS);
        // A long-poll answers at S (+ jitter ≤ S/16 + 0.25 s grace): 304 from the last known
        // ETag when the client holds it, else 503.
        expect(lp).toMatchObject({ status: 304 });
        expect(lp.ms).toBeGreaterThan(1900);
        expect(lp.ms).toBeLessThan(3500);
        expect(lpCold).toMatchObject({ status: 503, code: 'DB_UNAVAILABLE' });
        expect(lpCold.ms).toBeLessThan(3500);
        // Reads and writes: 503 within connect + query timeout, not the length of the freeze.
        expect(getJob).toMatchObject({ status: 503, code: 'DB_UNAVAILABLE' });
        expect(getJob.ms).toBeLessThan(DB_CALL_BOUND_MS);
        expect(enqueue).toMatchObject({ status: 503, code: 'DB_UNAVAILABLE' });
        expect(enqueue.ms).toBeLessThan(DB_CALL_BOUND_MS);
        // A token that is not cached cannot be checked: 503 (never a 401, never a hang).
        expect(unknownToken).toMatchObject({ status: 503, code: 'DB_UNAVAILABLE' });
        expect(unknownToken.ms).toBeLessThan(3500);
        expect(healthz).toMatchObject({ status: 200 });
        expect(healthz.ms).toBeLessThan(1000);

        expect(await readyz).toBeLessThan(4000);
        // Once the database is known not to answer, calls that need it are 503 at once.
        const fast = await Promise.all([
          timed(() => t.get(`${A}/jobs/${job.id}`, t.tokens.worker)),
          timed(() => t.post(`${A}/jobs/${job.id}/heartbeat`, t.tokens.worker, { worker_id: 'w' })),
          timed(() => t.get(FS(job.id), 'okit_' + 'C'.repeat(43))),
        ]);
        for (const r of fast) {
          expect(r).toMatchObject({ status: 503, code: 'DB_UNAVAILABLE' });
          expect(r.ms).toBeLessThan(1000);
        }
        for (const [name, f] of dbRoutes()) {
          const r = await f();
          expect(r, name).toMatchObject({ status: 503, code: 'DB_UNAVAILABLE' });
          expect(r.ms, name).toBeLessThan(1000);
        }
        const stream2 = await timedStream(STREAM(other.id), t.tokens.read);
        expect([200, 503]).toContain(stream2.status);
        expect(stream2.ms).toBeLessThan(1000);
        const scrape2 = await timed(() => t.get('/metrics', metrics));
        expect([200, 503]).toContain(scrape2.status); // 503 once the metrics token's cache entry has expired
        expect(scrape2.ms).toBeLessThan(1000);
        const lp2 = await timed(() => t.get(FS(job.id) + '?wait=2', t.tokens.read, { 'If-None-Match': etag }));
        expect([304, 503]).toContain(lp2.status); // 503 once the read token's cache entry (5 s) has expired
        if (lp2.status === 304) expect(lp2.source).toBe('last_known');
        expect(lp2.ms).toBeLessThan(3500);

        expect(await listenerLost).toBeLessThan(12_000);
        const r = await timed(() => t.get('/readyz', null));
        expect(r.status).toBe(503);
        while (since() < 10_000) await sleep(100);
        // The stream opened before the freeze is still open: nothing on it but keep-alive
        // comments (one is due 15 s after the last write), no signal, no end.
        for (;;) {
          const ev = await sse.next(50).catch((e: Error) => (/no SSE event/.test(e.message) ? 'quiet' : Promise.reject(e)));
          if (ev === 'quiet') break;
          expect(ev, 'the stream ended during the freeze').not.toBeNull();
          expect(ev).toEqual({ comment: 'keep-alive' });
        }
      } finally {
        clearTimeout(watchdog);
        thaw(pids);
      }

      // Back by itself: ready again, reads and writes work, NOTIFY wakes long-polls again.
      const thawedAt = performance.now();
      while ((await t.get('/readyz', null)).status !== 200) {
        expect(performance.now() - thawedAt).toBeLessThan(15_000);
        await sleep(100);
      }
      const { job } = (await (await t.post(`${A}/jobs`, t.tokens.worker, { type: 'after' })).json()) as { job: { id: string } };
      const etag = (await t.get(FS(job.id), t.tokens.read)).headers.get('etag')!;
      const t0 = performance.now();
      const lp = t.get(FS(job.id) + '?wait=20', t.tokens.read, { 'If-None-Match': etag });
      while (t.srv.waiters.size === 0) await sleep(10);
      await t.ledger.cancel('acme', job.id, { actor: 'ops' });
      expect((await lp).status).toBe(200);
      expect(performance.now() - t0).toBeLessThan(10_000);
      // The stream from before the freeze resyncs: the cancel reaches it as its last event.
      await t.ledger.cancel('acme', streamedId, { actor: 'ops' });
      const done = await sse!.nextEvent(10_000);
      expect(done?.event, JSON.stringify(done)).toBe('done');
      expect(JSON.parse(done!.data!).kind).toBe('canceled');
      // And every route answers again.
      expect((await t.get(`${A}/jobs/${job.id}/history`, t.tokens.read)).status).toBe(200);
      expect((await t.post(`${A}/workers/claim`, t.tokens.worker, { worker_id: 'fw', types: ['none-such'] })).status).toBe(200);
      expect(statuses.filter((s) => s >= 500 && s !== 503)).toEqual([]);
    } finally {
      thaw(pids);
      sse?.close();
      await t.srv.close();
      await pool.end().catch(() => undefined);
      await pg.destroy();
      fs.rmSync(pg.home, { recursive: true, force: true }); // destroy() removes the cluster; the home is ours
    }
  });
});
