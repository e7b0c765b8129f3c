/**
 * The console's files and headers (issue 16): `/` and `/console/<file>` from the built folder
 * with their content types and ETag/304, nothing outside it, a clear 404 page when the page is
 * not built, security headers on every response (CSP on HTML), and the next-action redirects.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CSP } from '../../src/http/console.js';
import { startServer, type RunningServer } from '../../src/http/server.js';
import { Ledger } from '../../src/ledger/ledger.js';
import { freshDb, type TestDb } from '../helpers/db.js';
import { startTestServer, type TestServer } from '../helpers/serve.js';

const API = '/api/v1/orchestrator';

describe('console files and headers', () => {
  let db: TestDb;
  let t: TestServer;
  let bare: RunningServer;
  let root: string;
  beforeAll(async () => {
    root = mkdtempSync(path.join(tmpdir(), 'okit-console-'));
    const dir = path.join(root, 'console');
    mkdirSync(dir);
    writeFileSync(path.join(dir, 'index.html'), '<!doctype html><link rel="stylesheet" href="/console/app.css"><script type="module" src="/console/app.js"></script>');
    writeFileSync(path.join(dir, 'app.js'), 'console.log("okit")');
    writeFileSync(path.join(dir, 'app.css'), 'body{}');
    writeFileSync(path.join(dir, 'kind.svg'), '<svg xmlns="http://www.w3.org/2000/svg"/>');
    writeFileSync(path.join(dir, '.env'), 'SECRET=1');
    writeFileSync(path.join(dir, 'notes.sh'), 'echo hi');
    mkdirSync(path.join(dir, 'sub'));
    writeFileSync(path.join(root, 'secret.js'), 'top secret');
    db = await freshDb();
    t = await startTestServer(db.url, db.pool, { consoleDir: dir });
    bare = await startServer({ url: db.url, pool: db.pool, ledger: new Ledger(db.pool), port: 0, consoleDir: path.join(root, 'missing') });
  });
  afterAll(async () => {
    await bare?.close();
    await t?.srv.close();
    await db?.drop();
    rmSync(root, { recursive: true, force: true });
  });

  const expectCommon = (r: Response) => {
    expect(r.headers.get('x-content-type-options')).toBe('nosniff');
    expect(r.headers.get('referrer-policy')).toBe('no-referrer');
  };

  it('serves the page at / with the strict CSP, and its files with their types, ETag and 304', async () => {
    const page = await fetch(t.base + '/');
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(page.headers.get('content-security-policy')).toBe(CSP);
    expect(CSP).toContain("script-src 'self'");
    expect(CSP).toContain("frame-ancestors 'none'");
    expect(CSP).not.toContain('unsafe-inline');
    expect(page.headers.get('x-frame-options')).toBe('DENY');
    expectCommon(page);
    expect(await page.text()).toContain('/console/app.js');
    for (const [f, type] of [
      ['app.js', 'text/javascript; charset=utf-8'],
      ['app.css', 'text/css; charset=utf-8'],
      ['kind.svg', 'image/svg+xml'],
    ] as const) {
      const r = await fetch(`${t.base}/console/${f}`);
      expect(r.status, f).toBe(200);
      expect(r.headers.get('content-type')).toBe(type);
      expectCommon(r);
      const etag = r.headers.get('etag')!;
      expect(etag).toMatch(/^"[A-Za-z0-9_-]{27}"$/);
      const again = await fetch(`${t.base}/console/${f}`, { headers: { 'If-None-Match': etag } });
      expect(again.status).toBe(304);
      expect(await again.text()).toBe('');
    }
    const head = await fetch(`${t.base}/console/app.js`, { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(head.headers.get('content-length')).toBe(String('console.log("okit")'.length));
  });

  it('serves nothing outside the folder: no traversal, no hidden files, no listing, no unknown types', async () => {
    for (const p of ['/console/..%2Fsecret.js', '/console/%2e%2e%2fsecret.js', '/console/.env', '/console/notes.sh', '/console/sub', '/console/', '/console/missing.js']) {
      const r = await fetch(t.base + p);
      expect(r.status, p).toBe(404);
      expectCommon(r);
      expect(await r.text(), p).not.toMatch(/top secret|SECRET=1|echo hi/);
    }
    // Raw request lines, past fetch's own normalisation of `..`.
    for (const target of ['/console/../secret.js', '/console/../../package.json', '/console/..', '/console/%2e%2e', '/console/%2e%2e%2fsecret.js']) {
      const text = await new Promise<string>((resolve, reject) => {
        const s = net.connect(t.srv.port, '127.0.0.1', () => s.write(`GET ${target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`));
        let buf = '';
        s.on('data', (d) => (buf += d));
        s.on('end', () => resolve(buf));
        s.on('error', reject);
      });
      expect(text, target).toMatch(/^HTTP\/1\.1 404/);
      expect(text).not.toMatch(/top secret|"name": "offline-kit"/);
    }
  });

  it('a server without a built page answers / with a clear 404 page, and the API still works', async () => {
    const r = await fetch(bare.baseUrl + '/');
    expect(r.status).toBe(404);
    expect(r.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(r.headers.get('content-security-policy')).toBe(CSP);
    expect(await r.text()).toContain('npm run build');
    expect((await fetch(bare.baseUrl + '/console/app.js')).status).toBe(404);
    expect((await fetch(bare.baseUrl + '/healthz')).status).toBe(200);
  });

  it('puts nosniff and no-referrer on every response: API answers, errors, SSE, 404s', async () => {
    const { job } = await t.ledger.enqueue('acme', { type: 'hdr', payload: {} });
    for (const r of [
      await t.get('/healthz', null),
      await t.get(`${API}/jobs/${job.id}`, t.tokens.read),
      await t.get(`${API}/jobs`, null),
      await t.get('/nope', null),
      await t.post(`${API}/jobs/${job.id}/cancel`, t.tokens.read, {}),
      await t.get(`${API}/stream/jobs?ids=${job.id}`, t.tokens.read),
    ])
      expectCommon(r);
  });

  it('redirects the next-action hrefs /jobs/{id} and /runs/{id} into the page', async () => {
    const id = '7c9e6679-7425-40de-944b-e07fc1f90ae7';
    for (const kind of ['jobs', 'runs']) {
      const r = await fetch(`${t.base}/${kind}/${id}`, { redirect: 'manual' });
      expect(r.status).toBe(302);
      expect(r.headers.get('location')).toBe(`/#/${kind}/${id}`);
      expectCommon(r);
      const bad = await fetch(`${t.base}/${kind}/%3Cscript%3E`, { redirect: 'manual' });
      expect(bad.status).toBe(400);
    }
  });
});
