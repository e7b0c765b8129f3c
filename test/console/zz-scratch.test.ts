// SCRATCH (not committed): a stand-in for i16srv's session + static serving, to smoke-test the page.
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { it } from 'vitest';
import { startServer } from '../../src/http/server.js';
import { createToken } from '../../src/http/tokens.js';
import { Ledger } from '../../src/ledger/ledger.js';
import { launch, shot, watch } from '../helpers/browser.js';
import { freshDb } from '../helpers/db.js';

it('scratch', async () => {
  const db = await freshDb();
  const ledger = new Ledger(db.pool);
  const srv = await startServer({ url: db.url, pool: db.pool, ledger, port: 0, telemetry: true });
  const admin = (await createToken(db.pool, { tenant: 'acme', scope: 'admin' })).token;
  const sessions = new Map<string, string>();
  const proxy = http.createServer(async (req, res) => {
    const u = req.url!;
    const sid = /okit_session=(\w+)/.exec(req.headers.cookie ?? '')?.[1];
    if (u === '/' || u.startsWith('/console/')) {
      const f = u === '/' ? 'index.html' : u.slice(9);
      res.writeHead(200, { 'Content-Type': f.endsWith('.js') ? 'text/javascript' : f.endsWith('.css') ? 'text/css' : 'text/html', 'Content-Security-Policy': "default-src 'self'; script-src 'self'; style-src 'self'" });
      return res.end(fs.readFileSync('dist/console/' + f));
    }
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks);
    if (u.startsWith('/api/v1/console/session')) {
      const view = { session: { tenant: 'acme', scope: 'admin', csrf_token: 'x'.repeat(32), expires_at: '2030-01-01T00:00:00.000000Z' } };
      if (req.method === 'POST') {
        const id = 's' + Math.random().toString(36).slice(2);
        sessions.set(id, JSON.parse(body.toString()).token);
        res.writeHead(201, { 'Set-Cookie': `okit_session=${id}; HttpOnly; SameSite=Strict; Path=/`, 'Content-Type': 'application/json' });
        return res.end(JSON.stringify(view));
      }
      if (!sid || !sessions.has(sid)) {
        res.writeHead(401, { 'Content-Type': 'application/json' });
        return res.end('{"error":{"code":"SESSION_INVALID","message":"no"}}');
      }
      res.writeHead(200, { 'Content-Type': 'application/json' });
      return res.end(JSON.stringify(view));
    }
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(req.headers)) if (typeof v === 'string' && !['host', 'cookie', 'connection'].includes(k)) headers[k] = v;
    if (sid && sessions.has(sid)) headers.authorization = `Bearer ${sessions.get(sid)}`;
    const r = await fetch(srv.baseUrl + u, { method: req.method, headers, body: req.method === 'GET' ? undefined : body });
    const out: Record<string, string> = {};
    r.headers.forEach((v, k) => (out[k] = v));
    delete out['content-encoding'];
    delete out['content-length'];
    res.writeHead(r.status, out);
    res.end(Buffer.from(await r.arrayBuffer()));
  });
  await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
  const base = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
  const ids = [];
  for (let i = 0; i < 5; i++) ids.push((await ledger.enqueue('acme', { type: i % 2 ? 'scan' : 'build', payload: { i, evil: '<img src=x onerror=alert(1)>' }, maxAttempts: 1 })).job.id);
  await ledger.addSignature('acme', { pattern: { error_code: 'E_DISK' }, outcome: { likely_cause: 'the disk is full', suggested_action: 'Free space' }, actor: 'token:t' });
  const c1 = (await ledger.claim('acme', { workerId: 'w1', types: ['build'] }))!;
  await ledger.progress('acme', c1.job.id, { workerId: 'w1', leaseToken: c1.leaseToken }, { phase: 'fetch', itemsDone: 3, itemsTotal: 10 });
  const c2 = (await ledger.claim('acme', { workerId: 'w1', types: ['scan'] }))!;
  await ledger.fail('acme', c2.job.id, { workerId: 'w1', leaseToken: c2.leaseToken }, { code: 'E_DISK', message: 'no space <script>alert(1)</script>' });
  await ledger.configureThrottle('acme', 'api.example', { capacity: 10, refillPerSec: 2 });
  const browser = await launch();
  const page = await browser.newPage({ viewport: { width: 1000, height: 800 } });
  const w = watch(page);
  page.on('console', (m) => console.log('console:', m.type(), m.text()));
  await page.goto(base + '/#/signin');
  await page.fill('#token', admin);
  await page.keyboard.press('Enter');
  await page.waitForSelector('[data-testid=who]');
  await page.waitForTimeout(1500);
  await shot(page, 'scratch-list');
  await page.goto(`${base}/#/jobs/${c1.job.id}`);
  await page.waitForTimeout(1500);
  await shot(page, 'scratch-live');
  await page.goto(`${base}/#/jobs/${c2.job.id}`);
  await page.waitForTimeout(1500);
  await shot(page, 'scratch-failed');
  await page.goto(`${base}/#/dashboard`);
  await page.waitForTimeout(1500);
  await shot(page, 'scratch-dash');
  console.log(JSON.stringify(w));
  await browser.close();
  proxy.close();
  await srv.close();
  await db.drop();
}, 60_000);
