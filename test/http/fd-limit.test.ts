/**
 * Finding 1 as the issue found it: `okit serve` under `ulimit -n 300` (prlimit on the child
 * server). Before the fix, 290 connections that each sent `GARBAGE\r\n\r\n` and stayed open
 * left the server at 300/300 fds and every new client, /healthz included, was reset. Now the
 * sockets are destroyed, and the default connection cap (the fd limit less FD_RESERVE) keeps
 * fds back for the pool and LISTEN even when more clients connect than the limit allows:
 * the extra ones get a JSON 503, the server never runs out, and it serves again once the
 * header timeout has ended the idle ones.
 */
import fs from 'node:fs';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FD_RESERVE } from '../../src/http/limits.js';
import { createToken } from '../../src/http/tokens.js';
import { Ledger } from '../../src/ledger/ledger.js';
import { raw, startChildServer, type ChildServer } from '../helpers/child-server.js';
import { freshDb, type TestDb } from '../helpers/db.js';

const NOFILE = 300;
const HEADERS_TIMEOUT_MS = 4000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Held {
  s: net.Socket;
  data: string;
  ended: boolean;
}
function hold(port: number, n: number, bytes: string | null): Promise<Held[]> {
  return Promise.all(
    Array.from(
      { length: n },
      () =>
        new Promise<Held>((resolve) => {
          // allowHalfOpen: a plain net socket answers the server's FIN with its own; an attacker doesn't.
          const e: Held = { s: net.connect({ port, host: '127.0.0.1', allowHalfOpen: true }), data: '', ended: false };
          e.s.on('error', () => ((e.ended = true), resolve(e)));
          e.s.on('data', (d) => (e.data += d));
          e.s.on('end', () => (e.ended = true)); // the server's FIN; our side stays open
          e.s.on('close', () => (e.ended = true));
          e.s.on('connect', () => {
            if (bytes) e.s.write(bytes);
            resolve(e);
          });
        }),
    ),
  );
}

describe(`okit serve under ulimit -n ${NOFILE}`, () => {
  let db: TestDb;
  let srv: ChildServer;
  let read: string;
  let jobId: string;
  let peak = 0;
  let sampler: NodeJS.Timeout | undefined;

  beforeAll(async () => {
    db = await freshDb();
    read = (await createToken(db.pool, { tenant: 'acme', scope: 'read' })).token;
    jobId = (await new Ledger(db.pool).enqueue('acme', { type: 'fd' })).job.id;
    // Default caps (derived from the limit), short header timeout so the test is quick.
    srv = await startChildServer(db.url, { limits: { headersTimeoutMs: HEADERS_TIMEOUT_MS } }, { nofile: NOFILE });
    expect(fs.readFileSync(`/proc/${srv.pid}/limits`, 'utf8')).toMatch(new RegExp(`^Max open files\\s+${NOFILE}\\s+${NOFILE}`, 'm'));
    sampler = setInterval(() => {
      try {
        peak = Math.max(peak, srv.fds());
      } catch {
        /* exited */
      }
    }, 5);
  });
  afterAll(async () => {
    clearInterval(sampler);
    await srv?.stop();
    await db?.drop();
  });

  /** A plain request that needs the database (token lookup, snapshot read). */
  const servesAll = async () => {
    expect((await fetch(`${srv.baseUrl}/healthz`)).status).toBe(200);
    expect((await fetch(`${srv.baseUrl}/readyz`)).status).toBe(200);
    const r = await fetch(`${srv.baseUrl}/api/v1/orchestrator/jobs/${jobId}/first-signal`, { headers: { Authorization: `Bearer ${read}` } });
    expect(r.status).toBe(200);
    await r.arrayBuffer();
  };

  it('290 clients that send GARBAGE and hold their side open: each gets a 400 and its fd back; /healthz and the database still served', async () => {
    await servesAll();
    const base = srv.fds();
    const bad = await hold(srv.port, 290, 'GARBAGE\r\n\r\n');
    const until = performance.now() + 10_000;
    while (performance.now() < until && bad.some((b) => !b.ended)) await sleep(50);
    expect(bad.filter((b) => b.ended).length).toBe(290);
    // Each gets a JSON answer: 400 for its garbage, or, when they arrive faster than a loaded
    // machine answers them, the connection cap's 503 (cap = limit - FD_RESERVE < 290).
    const is400 = (b: Held) => /^HTTP\/1\.1 400 /.test(b.data) && b.data.includes('"BAD_REQUEST"');
    const is503 = (b: Held) => /^HTTP\/1\.1 503 /.test(b.data) && b.data.includes('"TOO_MANY_CONNECTIONS"');
    expect(bad.filter((b) => !is400(b) && !is503(b)).map((b) => b.data.slice(0, 80))).toEqual([]);
    expect(bad.filter(is400).length).toBeGreaterThan(0);
    // Our 290 sides are still open; the server holds none of them.
    expect(srv.fds(), `fds: ${base} before`).toBeLessThanOrEqual(base + 20);
    await servesAll();
    for (const b of bad) b.s.destroy();
  });

  it(`more idle clients than the limit: past the cap (${NOFILE} - ${FD_RESERVE}) a JSON 503, the server never out of fds, and serving again after the header timeout`, async () => {
    const cap = NOFILE - FD_RESERVE;
    const refusedBefore = (await srv.stats()).refused;
    peak = 0;
    const openedAt = performance.now();
    const idle = await hold(srv.port, 400, null);
    const until = performance.now() + 10_000;
    while (performance.now() < until && (await srv.stats()).refused - refusedBefore < 400 - cap) await sleep(50);
    expect((await srv.stats()).refused - refusedBefore).toBeGreaterThanOrEqual(400 - cap);
    // Someone else now: refused the same way while the cap is full (JSON, not a reset).
    const r = await raw(srv.port, 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
    if (performance.now() - openedAt < HEADERS_TIMEOUT_MS) expect({ status: r.status, code: r.json?.error?.code }).toEqual({ status: 503, code: 'TOO_MANY_CONNECTIONS' });
    else expect([200, 503]).toContain(r.status); // a very slow machine: the idle ones may have timed out already
    // The idle ones get 408 at the header timeout and are closed; then everything is served.
    const settle = performance.now() + HEADERS_TIMEOUT_MS + 8000;
    while (performance.now() < settle && idle.some((h) => !h.ended)) await sleep(50);
    expect(idle.every((h) => h.ended)).toBe(true);
    // Each one got an answer: 503 past the cap at once, 408 at the header timeout for the admitted.
    const refused = idle.filter((h) => /^HTTP\/1\.1 503 /.test(h.data));
    const timedOut = idle.filter((h) => /^HTTP\/1\.1 408 /.test(h.data));
    expect(refused.length + timedOut.length).toBe(400);
    expect(refused.length).toBeGreaterThanOrEqual(400 - cap);
    expect(timedOut.length).toBeLessThanOrEqual(cap);
    for (const h of refused) expect(JSON.parse(h.data.split('\r\n\r\n')[1]!).error.code).toBe('TOO_MANY_CONNECTIONS');
    await servesAll();
    // The fd limit was never reached: the reserve was kept for the pool, LISTEN and the probe.
    expect(peak, `peak fds ${peak} of ${NOFILE}`).toBeLessThan(NOFILE - 20);
    expect(srv.log()).not.toMatch(/EMFILE/);
    for (const h of idle) h.s.destroy();
  });
});
