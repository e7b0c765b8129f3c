/**
 * The hostile network, against a server in its own process (so its file descriptors can be
 * counted in /proc/<pid>/fd): malformed requests on every route, slow clients, hundreds of
 * bad connections held open, connection caps, and paths that `new URL()` reads as hosts.
 * Every answer is a 4xx JSON error (503 for a refused connection), arrives within its
 * documented bound, and leaves the server's fd count where it was.
 */
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createToken } from '../../src/http/tokens.js';
import { Ledger } from '../../src/ledger/ledger.js';
import { raw, startChildServer, type ChildServer, type RawReply } from '../helpers/child-server.js';
import { freshDb, type TestDb } from '../helpers/db.js';

const A = '/api/v1/orchestrator';
const HEADERS_TIMEOUT_MS = 1500;
const REQUEST_TIMEOUT_MS = 3000;
const PER_IP = 520;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function expectJsonError(r: RawReply, status: number | number[], code?: string) {
  const statuses = Array.isArray(status) ? status : [status];
  expect(statuses, `${r.head}\n${r.body}`).toContain(r.status);
  expect(r.head).toMatch(/\r\ncontent-type: application\/json/i);
  expect(typeof r.json?.error?.code, r.body).toBe('string');
  expect(typeof r.json?.error?.message).toBe('string');
  if (code) expect(r.json!.error!.code).toBe(code);
}

/** Opens n sockets from `localAddress`, writes `bytes` (or `bytes(i)`) on each, and keeps them open. */
async function openMany(port: number, n: number, bytes: string | null | ((i: number) => string), localAddress = '127.0.0.1') {
  const socks: Array<{ s: net.Socket; data: string; ended: boolean }> = [];
  await Promise.all(
    Array.from(
      { length: n },
      (_, i) =>
        new Promise<void>((resolve) => {
          // allowHalfOpen: a plain net socket answers the server's FIN with its own; a hostile client holds its side open.
          const e = { s: net.connect({ port, host: '127.0.0.1', localAddress, allowHalfOpen: true }), data: '', ended: false };
          socks.push(e);
          e.s.on('error', () => ((e.ended = true), resolve()));
          e.s.on('data', (d) => (e.data += d));
          e.s.on('end', () => (e.ended = true)); // the server's FIN; we do not close our side
          e.s.on('close', () => (e.ended = true));
          e.s.on('connect', () => {
            const b = typeof bytes === 'function' ? bytes(i) : bytes;
            if (b) e.s.write(b);
            resolve();
          });
        }),
    ),
  );
  return socks;
}

describe('hostile network clients', () => {
  let db: TestDb;
  let srv: ChildServer;
  let jobId: string;
  let read: string;
  let worker: string;
  let admin: string;
  let metrics: string;
  /** The server's fds once it has served a little: where every test must leave them. */
  let baseFds: number;
  const t0 = performance.now();

  beforeAll(async () => {
    db = await freshDb();
    read = (await createToken(db.pool, { tenant: 'acme', scope: 'read' })).token;
    worker = (await createToken(db.pool, { tenant: 'acme', scope: 'worker' })).token;
    admin = (await createToken(db.pool, { tenant: 'acme', scope: 'admin' })).token;
    metrics = (await createToken(db.pool, { tenant: 'ops', scope: 'metrics' })).token;
    jobId = (await new Ledger(db.pool).enqueue('acme', { type: 'hostile' })).job.id;
    srv = await startChildServer(db.url, { limits: { headersTimeoutMs: HEADERS_TIMEOUT_MS, requestTimeoutMs: REQUEST_TIMEOUT_MS, maxConnectionsPerIp: PER_IP } });
    for (const [method, path, token] of routes()) if (method === 'GET') await fetch(srv.baseUrl + path, { headers: token ? { Authorization: `Bearer ${token}` } : {} }).then((r) => r.arrayBuffer());
    baseFds = srv.fds();
  });
  afterAll(async () => {
    await srv?.stop();
    await db?.drop();
  });

  const routes = () => [
    ['GET', '/healthz', null],
    ['GET', '/readyz', null],
    ['GET', `${A}/jobs/${jobId}/first-signal`, read],
    ['GET', `${A}/stream/jobs/${jobId}/first-signal`, read],
    ['GET', `${A}/jobs/${jobId}`, read],
    ['GET', `${A}/jobs/${jobId}/history`, read],
    ['POST', `${A}/jobs`, worker],
    ['POST', `${A}/workers/claim`, worker],
    ['POST', `${A}/jobs/${jobId}/heartbeat`, worker],
    ['POST', `${A}/jobs/${jobId}/progress`, worker],
    ['POST', `${A}/jobs/${jobId}/complete`, worker],
    ['POST', `${A}/jobs/${jobId}/fail`, worker],
    ['POST', `${A}/jobs/${jobId}/cancel`, admin],
    ['POST', `${A}/telemetry/ttfs`, read],
    ['GET', '/metrics', metrics],
  ] as const;

  it('malformed requests on every route: a 4xx JSON error, and the connection closed', async () => {
    for (const [method, path, token] of routes()) {
      const auth = token ? `Authorization: Bearer ${token}\r\n` : '';
      const line = `${method} ${path} HTTP/1.1\r\n`;
      const cases: Array<[string, string, number, string]> = [
        ['a header name with a space', `${line}Host: x\r\n${auth}Bad Header: 1\r\n\r\n`, 400, 'BAD_REQUEST'],
        ['no Host header', `${line}${auth}Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}`, 400, 'BAD_REQUEST'],
        ['40 KB of headers', `${line}Host: x\r\n${auth}X-Big: ${'a'.repeat(40_000)}\r\n\r\n`, 431, 'HEADERS_TOO_LARGE'],
        ['Content-Length with Transfer-Encoding', `${line}Host: x\r\n${auth}Content-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n{}`, 400, 'BAD_REQUEST'],
        ['a Content-Length that is not a number', `${line}Host: x\r\n${auth}Content-Length: abc\r\n\r\n`, 400, 'BAD_REQUEST'],
        ['broken chunked body', `${line}Host: x\r\n${auth}Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n`, 400, 'BAD_REQUEST'],
        ['a NUL in the target', `${method} ${path}\0 HTTP/1.1\r\nHost: x\r\n${auth}\r\n`, 400, 'BAD_REQUEST'],
        ['an unknown HTTP version', `${method} ${path} HTTP/7.3\r\nHost: x\r\n${auth}\r\n`, 400, 'BAD_REQUEST'],
      ];
      for (const [name, bytes, status, code] of cases) {
        // A GET with no body still parses its headers: a broken chunked body is a POST's case.
        if (name === 'broken chunked body' && method === 'GET') continue;
        const r = await raw(srv.port, bytes, { waitMs: 4000 });
        expectJsonError(r, status, code);
        expect(r.closed, `${method} ${path}: ${name}`).toBe(true);
      }
    }
    const garbage = await raw(srv.port, 'GARBAGE\r\n\r\n');
    expectJsonError(garbage, 400, 'BAD_REQUEST');
    expect((await fetch(`${srv.baseUrl}/healthz`)).status).toBe(200);
  });

  it('slow clients: headers or body that do not arrive in time get 408 REQUEST_TIMEOUT, within the bound', async () => {
    const slowHeaders = routes().map(([method, path]) => raw(srv.port, `${method} ${path} HTTP/1.1\r\nHost: x\r\n`, { waitMs: 15_000 }));
    // A trickle: a byte every 300 ms never completes the headers either; the deadline is for all of them.
    const trickle = raw(srv.port, ['GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ', ...Array.from({ length: 40 }, (_, i) => [300, 'a'] as const).flat() as Array<string | number>], { waitMs: 15_000 });
    const idle = raw(srv.port, [], { waitMs: 15_000 }); // connects and says nothing
    const slowBodies = routes()
      .filter(([m]) => m === 'POST')
      .map(([method, path, token]) =>
        raw(srv.port, [`${method} ${path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"worker_id":`], { waitMs: 15_000 }),
      );
    for (const r of [...(await Promise.all(slowHeaders)), await trickle, await idle]) {
      expectJsonError(r, 408, 'REQUEST_TIMEOUT');
      expect(r.closed).toBe(true);
      expect(r.ms).toBeLessThan(HEADERS_TIMEOUT_MS + 2000);
    }
    for (const r of await Promise.all(slowBodies)) {
      expectJsonError(r, 408, 'REQUEST_TIMEOUT');
      expect(r.closed).toBe(true);
      expect(r.ms).toBeLessThan(REQUEST_TIMEOUT_MS + 2000);
    }
  });

  it('500 bad connections held open by their clients: the server keeps no fd for them, and still serves', async () => {
    const base = srv.fds();
    // Garbage, and malformed requests to every route in turn.
    const rs = routes();
    const bad = await openMany(srv.port, 500, (i) => {
      if (i % 2 === 0) return 'GARBAGE\r\n\r\n';
      const [method, path, token] = rs[(i >> 1) % rs.length]!;
      return `${method} ${path} HTTP/1.1\r\nHost: x\r\n${token ? `Authorization: Bearer ${token}\r\n` : ''}Bad Header: 1\r\n\r\n`;
    });
    const deadline = performance.now() + 10_000;
    while (performance.now() < deadline && bad.some((b) => !b.ended)) await sleep(50);
    expect(bad.filter((b) => b.ended).length).toBe(500); // the server closed every one
    expect(bad.every((b) => /^HTTP\/1\.1 400 /.test(b.data) && b.data.includes('"BAD_REQUEST"'))).toBe(true);
    const during = srv.fds(); // our sides are all still open
    expect(during, `fds: ${base} before, ${during} with 500 bad clients still connected`).toBeLessThanOrEqual(base + 20);
    expect((await fetch(`${srv.baseUrl}/healthz`)).status).toBe(200);

    // The same for clients that time out: 300 that never finish their headers.
    const slow = await openMany(srv.port, 300, 'GET /healthz HTTP/1.1\r\nHost: x\r\n');
    while (performance.now() < deadline + HEADERS_TIMEOUT_MS + 5000 && slow.some((b) => !b.ended)) await sleep(50);
    expect(slow.every((b) => b.ended && /^HTTP\/1\.1 408 /.test(b.data))).toBe(true);
    expect(srv.fds()).toBeLessThanOrEqual(base + 20);
    for (const b of [...bad, ...slow]) b.s.destroy();
    expect((await srv.stats()).connections).toBeLessThanOrEqual(5);
  });

  it(`one client address holds at most ${PER_IP} connections (503 TOO_MANY_CONNECTIONS past it); others are still served`, async () => {
    const base = srv.fds();
    const refusedBefore = (await srv.stats()).refused;
    // Busy connections that no timeout ends: complete long-polls, 30 more than the cap.
    const etag = (await fetch(`${srv.baseUrl}${A}/jobs/${jobId}/first-signal`, { headers: { Authorization: `Bearer ${read}` } })).headers.get('etag')!;
    const poll = `GET ${A}/jobs/${jobId}/first-signal?wait=30 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${read}\r\nIf-None-Match: ${etag}\r\n\r\n`;
    const hog = await openMany(srv.port, PER_IP + 30, poll, '127.0.0.3');
    const until = performance.now() + 15_000;
    while (performance.now() < until && (await srv.stats()).refused - refusedBefore < 30) await sleep(50);
    await sleep(100);
    const refused = hog.filter((h) => h.ended);
    expect(refused.length).toBe(30);
    for (const h of refused) {
      expect(h.data).toMatch(/^HTTP\/1\.1 503 /);
      expect(JSON.parse(h.data.split('\r\n\r\n')[1]!).error.code).toBe('TOO_MANY_CONNECTIONS');
      expect(h.data).toMatch(/\r\nRetry-After: 1\r\n/);
    }
    expect((await fetch(`${srv.baseUrl}/healthz`)).status).toBe(200); // another address
    expect(srv.fds()).toBeLessThanOrEqual(base + PER_IP + 20);
    for (const h of hog) h.s.destroy();
    const settle = performance.now() + 10_000;
    while (performance.now() < settle && srv.fds() > base + 20) await sleep(50);
    expect(srv.fds()).toBeLessThanOrEqual(base + 20);
  });

  it('paths starting with // or /\\/ are paths: 400 or 404 JSON, never 500, and no authority is eaten', async () => {
    const paths = ['//', '///', '//a:99999/', '//[/', '//%zz/', '//@/', '/\\/', '//x/healthz', '//healthz', '/healthz/', `//x${A}/jobs/${jobId}/first-signal`, `${A}/jobs//first-signal`];
    for (let round = 0; round < 5; round++)
      for (const p of paths)
        for (const method of ['GET', 'POST']) {
          const r = await raw(srv.port, `${method} ${p} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${worker}\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}`);
          expectJsonError(r, [400, 404]);
        }
    // The absolute form is a path too; a broken one is 400.
    const abs = await raw(srv.port, 'GET http://x/healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    expect(abs.status).toBe(200);
    expectJsonError(await raw(srv.port, 'GET http://x//healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'), 404, 'NOT_FOUND');
    expectJsonError(await raw(srv.port, 'GET http://[/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'), 400, 'BAD_REQUEST');
    expectJsonError(await raw(srv.port, 'OPTIONS * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'), 400, 'BAD_REQUEST');
    // Every route behind a `//` (with and without an authority to eat), `/\`, or a trailing slash.
    for (const [method, path, token] of routes())
      for (const p of [`//x${path}`, `/${path}`, `//x:99999${path}`, `//@${path}`, `/\\${path.slice(1)}`, `${path}/`]) {
        const r = await raw(srv.port, `${method} ${p} HTTP/1.1\r\nHost: x\r\n${token ? `Authorization: Bearer ${token}\r\n` : ''}Content-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}`);
        expectJsonError(r, [400, 404]);
      }
  });

  it('the log: client errors are one line each, no stack traces, rate-limited', async () => {
    // What was dropped is reported in one line when the 10 s window closes.
    const until = performance.now() + 12_000;
    while (performance.now() < until && !/suppressed/.test(srv.log())) await sleep(100);
    const lines = srv.log().split('\n').filter(Boolean);
    expect(lines.filter((l) => /^\s+at /.test(l) || /internal error/.test(l))).toEqual([]);
    expect(lines.every((l) => l.startsWith('okit: '))).toBe(true);
    // Above, about 1,400 client errors were caused; the log holds at most 20 per 10 s of them.
    const clientLines = lines.filter((l) => /client error|refused a connection/.test(l));
    const windows = Math.ceil((performance.now() - t0) / 10_000) + 1;
    expect(clientLines.length).toBeGreaterThan(0);
    expect(clientLines.length).toBeLessThanOrEqual(20 * windows);
    expect(lines.some((l) => /suppressed/.test(l))).toBe(true);
  });

  it('after all of it the server holds the fds it started with, and serves every route', async () => {
    const settle = performance.now() + 10_000;
    while (performance.now() < settle && srv.fds() > baseFds + 20) await sleep(50);
    expect(srv.fds(), `fds: ${baseFds} at the start`).toBeLessThanOrEqual(baseFds + 20);
    expect((await srv.stats()).connections).toBeLessThanOrEqual(5);
    for (const [method, path, token] of routes()) {
      const r = await fetch(srv.baseUrl + path, { method, headers: { ...(token ? { Authorization: `Bearer ${token}` } : {}), ...(method === 'POST' ? { 'Content-Type': 'application/json' } : {}) }, body: method === 'POST' ? '{}' : undefined });
      await r.arrayBuffer();
      expect(r.status, `${method} ${path}`).toBeLessThan(500);
    }
  });
});
