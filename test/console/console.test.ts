/**
 * The console in a real Chromium (Debian's, by playwright-core) against a real `okit serve` on a
 * real Postgres: one browser and one server for the whole file (two cores). Each test signs in
 * its own browser context (its own cookie jar). Screenshots go to test-artifacts/console/.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type RunningServer } from '../../src/http/server.js';
import { createToken } from '../../src/http/tokens.js';
import { Ledger } from '../../src/ledger/ledger.js';
import { OkitClient } from '../../src/worker/client.js';
import { launch, shot, watch } from '../helpers/browser.js';
import { okit } from '../helpers/cli.js';
import { freshDb, type TestDb } from '../helpers/db.js';

const API = '/api/v1/orchestrator';
let db: TestDb;
let ledger: Ledger;
let srv: RunningServer;
let browser: Browser;
let base = '';
const tokens = { read: '', worker: '', admin: '' };
const contexts: BrowserContext[] = [];

const serve = (port = 0) => startServer({ url: db.url, pool: db.pool, ledger, port, telemetry: true, fallbackPollMs: 200 });

beforeAll(async () => {
  db = await freshDb();
  ledger = new Ledger(db.pool);
  srv = await serve();
  base = srv.baseUrl;
  for (const s of ['read', 'worker', 'admin'] as const) tokens[s] = (await createToken(db.pool, { tenant: 'acme', scope: s })).token;
  browser = await launch();
});
afterAll(async () => {
  for (const c of contexts) await c.close().catch(() => {});
  await browser?.close();
  await srv?.close();
  await db?.drop();
});

async function context(viewport = { width: 1100, height: 800 }, reducedMotion: 'reduce' | 'no-preference' = 'no-preference'): Promise<BrowserContext> {
  const c = await browser.newContext({ viewport, reducedMotion });
  contexts.push(c);
  return c;
}

/** A page signed in by pasting a token, as a person would. */
async function signedIn(scope: 'read' | 'admin', viewport?: { width: number; height: number }, reducedMotion?: 'reduce'): Promise<Page> {
  const page = await (await context(viewport, reducedMotion)).newPage();
  await page.goto(`${base}/#/signin`);
  await page.fill('#token', tokens[scope]);
  await page.keyboard.press('Enter');
  await page.waitForSelector('[data-testid=who]');
  return page;
}

const worker = () => new OkitClient({ url: base, token: tokens.worker });
const enqueue = async (type: string, payload: unknown = {}, maxAttempts = 3) => (await ledger.enqueue('acme', { type, payload, maxAttempts })).job.id;
const kindOf = (page: Page) => page.locator('section.card').getAttribute('data-kind');
const waitKind = (page: Page, kind: string, timeout = 15_000) => page.waitForSelector(`section.card[data-kind="${kind}"]`, { timeout });
const stateOf = async (id: string) => (await ledger.getJob('acme', id)).state;

describe('sign-in', () => {
  it('a pasted token becomes an HttpOnly, SameSite=Strict session cookie; the token is not kept by the page', async () => {
    const page = await signedIn('admin');
    expect(await page.textContent('[data-testid=who]')).toContain('acme · admin');
    const cookies = await page.context().cookies();
    const c = cookies.find((x) => x.name === 'okit_session');
    expect(c).toBeDefined();
    expect(c!.httpOnly).toBe(true);
    expect(c!.sameSite).toBe('Strict');
    expect(c!.value).not.toContain(tokens.admin);
    // Nothing of the token is readable by page script.
    const seen = await page.evaluate(() => document.cookie + JSON.stringify(sessionStorage) + JSON.stringify(localStorage));
    expect(seen).not.toContain(tokens.admin);
    // Sign out ends the session on the server, not only in the page.
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.waitForSelector('.signin');
    expect(await page.evaluate(async () => (await fetch('/api/v1/console/session')).status)).toBe(401);
  });

  it('a one-time link from `okit console-link` signs in once; a second use is refused', async () => {
    const r = await okit(['console-link', '--tenant', 'acme', '--scope', 'read', '--base-url', base], { DATABASE_URL: db.url });
    expect(r.code, r.stderr).toBe(0);
    const url = r.stdout.trim().split('\n').pop()!;
    expect(url).toMatch(new RegExp(`^${base.replace(/[.]/g, '\\.')}/#/signin\\?link=`));
    const page = await (await context()).newPage();
    await page.goto(url);
    await page.waitForSelector('[data-testid=who]');
    expect(await page.textContent('[data-testid=who]')).toContain('acme · read');
    expect(page.url()).not.toContain('link='); // the code does not linger in the address bar
    const again = await (await context()).newPage();
    await again.goto(url);
    await again.waitForSelector('.signin .error-text');
    expect(await again.textContent('.signin .error-text')).toContain('LINK_USED');
    expect(await again.locator('[data-testid=who]').count()).toBe(0);
  });
});

describe('views', () => {
  it('the list shows the jobs with a kind icon, summary and ETA', async () => {
    const ids = [await enqueue('list-a'), await enqueue('list-b'), await enqueue('list-a')];
    const page = await signedIn('read');
    await page.goto(`${base}/#/jobs?type=list-a`);
    await page.waitForSelector(`tr[data-job="${ids[0]}"]`);
    expect(await page.locator('table.jobs tbody tr').count()).toBe(2);
    const row = page.locator(`tr[data-job="${ids[2]}"]`);
    expect(await row.getAttribute('data-kind')).toBe('queued');
    expect(await row.locator('.status-text').textContent()).toBe('Queued');
    expect(await row.locator('.status-icon').textContent()).toBe('◷');
    expect(await row.locator('.row-summary').textContent()).toMatch(/Waiting in queue/);
    await page.goto(`${base}/#/jobs`);
    await page.waitForSelector(`tr[data-job="${ids[1]}"]`);
    await shot(page, 'jobs-list');
    // A run page: the run's aggregated signal and its jobs, with the issue 14 `/runs/{id}` path redirected to it.
    const { run } = await ledger.createRun('acme', {});
    const inRun = [(await ledger.enqueue('acme', { type: 'in-run', payload: {}, runId: run.id })).job.id, (await ledger.enqueue('acme', { type: 'in-run', payload: {}, runId: run.id })).job.id];
    await page.goto(`${base}/runs/${run.id}`);
    expect(page.url()).toBe(`${base}/#/runs/${run.id}`);
    await page.waitForSelector(`tr[data-job="${inRun[1]}"]`);
    expect(await page.textContent('section.card .summary')).toMatch(/0 of 2 jobs done/);
    expect(await page.locator('table.jobs tbody tr').count()).toBe(2);
  });

  it('a job card goes queued → started → phase with a progress bar → succeeded while a worker drives it', async () => {
    const id = await enqueue('live');
    const page = await signedIn('read');
    const w = watch(page);
    await page.goto(`${base}/#/jobs/${id}`);
    await waitKind(page, 'queued');
    const c = worker();
    const claim = (await c.claim({ workerId: 'w-live', types: ['live'] }))!;
    const lease = { workerId: 'w-live', leaseToken: claim.leaseToken };
    await waitKind(page, 'started');
    await c.progress(id, { ...lease, phase: 'fetch', summary: 'Fetching 3 of 10', itemsDone: 3, itemsTotal: 10 });
    await waitKind(page, 'phase');
    await page.waitForSelector('[role=progressbar][aria-valuenow="30"]');
    expect(await page.textContent('.phase-current')).toContain('fetch');
    expect(await page.textContent('[data-testid=live]')).toContain('phase fetch');
    // A second report a second later gives the server a rate, so an ETA, which the card counts down.
    await new Promise((r) => setTimeout(r, 1000));
    await c.progress(id, { ...lease, phase: 'fetch', summary: 'Fetching 4 of 10', itemsDone: 4, itemsTotal: 10 });
    await page.waitForSelector('[role=progressbar][aria-valuenow="40"]');
    await page.waitForFunction(() => /^ETA \d+s$/.test(document.querySelector('.card .eta')?.textContent ?? ''));
    const eta1 = await page.textContent('.card .eta');
    await page.waitForFunction((was) => document.querySelector('.card .eta')?.textContent !== was, eta1, { timeout: 5000 });
    const secs = (t: string | null) => Number(/(\d+)s/.exec(t ?? '')?.[1] ?? NaN);
    expect(secs(await page.textContent('.card .eta'))).toBeLessThan(secs(eta1));
    await shot(page, 'job-live');
    await c.complete(id, lease);
    await waitKind(page, 'succeeded');
    await page.waitForSelector('section.card[data-state="done"]');
    expect(await page.textContent('[data-testid=live]')).toMatch(/Succeeded/);
    // The history timeline follows the card.
    await page.waitForFunction(() => document.querySelectorAll('.timeline li').length >= 4);
    expect(w.errors).toEqual([]);
    expect(w.csp).toEqual([]);
    // The page reported its time to first signal as surface ui.
    expect(await page.evaluate(() => (window as unknown as { __okitTtfs?: number[] }).__okitTtfs?.length ?? 0)).toBeGreaterThan(0);
    await expect
      .poll(async () => Number((await db.pool.query(`SELECT count(*) AS n FROM okit.ttfs_events WHERE surface = 'ui' AND job_id = $1`, [id])).rows[0].n), { timeout: 10_000 })
      .toBeGreaterThan(0);
  }, 60_000);

  it('skeleton first, then the cached snapshot, then live; a stalled stream falls back to polling with If-None-Match', async () => {
    const id = await enqueue('degrade');
    const page = await signedIn('read');
    await page.goto(`${base}/#/jobs/${id}`);
    await waitKind(page, 'queued'); // live once: the tab now holds a snapshot
    // What the card shows, frame by frame, from the next load on.
    await page.addInitScript(() => {
      const seen: string[] = [];
      (window as unknown as { __seen: string[] }).__seen = seen;
      const look = () => {
        const card = document.querySelector('section.card');
        const now = !card ? (document.querySelector('.skeleton') ? 'skeleton' : 'none') : card.querySelector('.skeleton') ? 'skeleton' : card.querySelector('.badge') ? 'cached' : 'live';
        if (seen[seen.length - 1] !== now) seen.push(now);
        requestAnimationFrame(look);
      };
      look();
    });
    // The stream stalls (answers after 3 s); the first-signal polls go through.
    const polls: Array<{ inm: string | undefined; status: number }> = [];
    await page.route('**/stream/jobs?**', async (route) => {
      await new Promise((r) => setTimeout(r, 3000));
      await route.continue().catch(() => {});
    });
    page.on('response', (r) => {
      if (r.url().endsWith(`/jobs/${id}/first-signal`)) polls.push({ inm: r.request().headers()['if-none-match'], status: r.status() });
    });
    await page.reload();
    await page.waitForFunction(() => (window as unknown as { __seen: string[] }).__seen.includes('live'), null, { timeout: 10_000 });
    const seen = await page.evaluate(() => (window as unknown as { __seen: string[] }).__seen.filter((x) => x !== 'none'));
    expect(seen[0]).toBe('skeleton');
    expect(seen.indexOf('cached')).toBeGreaterThan(0);
    expect(seen.indexOf('live')).toBeGreaterThan(seen.indexOf('cached'));
    // The poll that made it live sent the cached ETag and was told it is current (304).
    expect(polls[0]?.inm).toMatch(/.+/);
    expect(polls[0]?.status).toBe(304);
    expect(await page.textContent('[data-testid=conn]')).toContain('polling');
    await page.unroute('**/stream/jobs?**');
  });

  it('a failed job shows its likely cause and next actions', async () => {
    await ledger.addSignature('acme', { pattern: { error_code: 'E_DISK_FULL' }, outcome: { likely_cause: 'the worker disk is full', suggested_action: 'Free space on the worker' }, actor: 'token:test' });
    const id = await enqueue('fails', {}, 1);
    const c = worker();
    const claim = (await c.claim({ workerId: 'w-fail', types: ['fails'] }))!;
    await c.fail(id, { workerId: 'w-fail', leaseToken: claim.leaseToken, code: 'E_DISK_FULL', message: 'no space left on device' });
    const page = await signedIn('admin');
    await page.goto(`${base}/#/jobs/${id}`);
    await waitKind(page, 'failed');
    expect(await page.textContent('.likely-cause dd')).toBe('the worker disk is full');
    const actions = await page.locator('.next-actions li').allTextContents();
    expect(actions.join('\n')).toContain('Free space on the worker');
    expect(actions.join('\n')).toContain(`okit job history ${id}`);
    expect(await page.textContent('.status-text')).toBe('Failed');
    // An admin may retry it from the page.
    expect(await page.getByRole('button', { name: 'Retry job' }).isEnabled()).toBe(true);
    await shot(page, 'job-failed');
  });

  it('cancel from the page works for an admin session (by keyboard) and is refused for a read session', async () => {
    const id = await enqueue('cancel-me');
    const admin = await signedIn('admin');
    await admin.goto(`${base}/#/jobs/${id}`);
    await waitKind(admin, 'queued');
    const btn = admin.getByRole('button', { name: 'Cancel job' });
    await btn.focus();
    await admin.keyboard.press('Enter');
    await waitKind(admin, 'canceled');
    expect(await stateOf(id)).toBe('canceled');

    const other = await enqueue('cancel-me');
    const read = await signedIn('read');
    await read.goto(`${base}/#/jobs/${other}`);
    await waitKind(read, 'queued');
    expect(await read.getByRole('button', { name: 'Cancel job' }).isDisabled()).toBe(true);
    // Even sent by hand with the session's CSRF token, the server refuses a read session.
    const status = await read.evaluate(async (url) => {
      const s = await (await fetch('/api/v1/console/session')).json();
      const r = await fetch(url, { method: 'POST', headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': s.session.csrf_token }, body: '{}' });
      return { status: r.status, body: await r.json() };
    }, `${API}/jobs/${other}/cancel`);
    expect(status.status).toBe(403);
    expect(status.body.error.code).toBe('FORBIDDEN');
    expect(await stateOf(other)).toBe('queued');
  });

  it('the dashboard shows queue depth, throttled hosts, paused types, dead letters and TTFS against the SLO; usable at 360 px', async () => {
    await ledger.configureThrottle('acme', 'api.example', { capacity: 10, refillPerSec: 2 });
    await ledger.pause('acme', 'nightly', { actor: 'token:test', reason: 'maintenance window' });
    const dead = await enqueue('dash-dead', {}, 1);
    const claim = (await ledger.claim('acme', { workerId: 'w-dash', types: ['dash-dead'] }))!;
    await ledger.fail('acme', dead, { workerId: 'w-dash', leaseToken: claim.leaseToken }, { code: 'E_GONE', message: 'upstream gone' });
    const page = await signedIn('admin');
    await page.goto(`${base}/#/dashboard`);
    await page.waitForSelector('.panel');
    const text = await page.textContent('main');
    expect(text).toMatch(/Dead letters.*dash-dead: 1/s);
    expect(text).toContain('api.example');
    expect(text).toContain('nightly');
    expect(text).toMatch(/ui.*p50/s);
    expect(await page.locator('svg.chart').count()).toBe(3);
    await shot(page, 'dashboard');
    // The operator's other views.
    await ledger.createSource('acme', { name: 'registry', host: 'registry.example' });
    await page.goto(`${base}/#/throttles`);
    await page.waitForSelector('main table');
    expect(await page.textContent('main table')).toContain('api.example');
    await page.goto(`${base}/#/dead-letters`);
    await page.waitForSelector('main table');
    expect(await page.textContent('main table')).toContain('E_GONE: upstream gone');
    await page.getByRole('button', { name: 'Retry dash-dead' }).click();
    await expect.poll(() => stateOf(dead), { timeout: 10_000 }).toBe('queued');
    await page.goto(`${base}/#/sources`);
    await page.waitForSelector('main table');
    expect(await page.textContent('main table')).toContain('registry.example');
    // The motion tokens, as CSS variables; with prefers-reduced-motion they are 0.
    const tokens = async (p: Page) =>
      (await p.evaluate(() => ['fast', 'base', 'slow'].map((k) => getComputedStyle(document.documentElement).getPropertyValue(`--motion-${k}`).trim()))).map((v) =>
        Math.round(v.endsWith('ms') ? parseFloat(v) : parseFloat(v) * 1000),
      ); // the minifier writes 150ms as .15s
    expect(await tokens(page)).toEqual([150, 250, 400]);
    const narrow = await signedIn('read', { width: 360, height: 780 }, 'reduce');
    expect(await tokens(narrow)).toEqual([0, 0, 0]);
    for (const hash of ['#/dashboard', '#/jobs']) {
      await narrow.goto(`${base}/${hash}`);
      await narrow.waitForSelector('main table');
      expect(await narrow.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(360);
    }
    await shot(narrow, 'jobs-360px');
  });
});

describe('hostile input and cross-site requests', () => {
  it('XSS: a summary, payload or error message holding <img onerror> or <script> renders as text', async () => {
    const evil = '<img src=x onerror="window.__pwned=1;alert(1)"><script>window.__pwned=2;alert(2)</script>';
    const id = await enqueue('xss', { note: evil });
    const c = worker();
    const claim = (await c.claim({ workerId: 'w-xss', types: ['xss'] }))!;
    await c.progress(id, { workerId: 'w-xss', leaseToken: claim.leaseToken, phase: 'analyze', summary: evil });
    const page = await signedIn('read');
    const w = watch(page);
    await page.goto(`${base}/#/jobs/${id}`);
    await waitKind(page, 'phase');
    expect(await page.textContent('[data-testid=summary]')).toContain(evil);
    await c.fail(id, { workerId: 'w-xss', leaseToken: claim.leaseToken, code: 'E_XSS', message: evil, retryable: false });
    await waitKind(page, 'failed');
    expect(await page.textContent('[data-testid=summary]')).toContain(evil);
    await page.click('details:has([data-testid=payload]) summary');
    expect(await page.textContent('[data-testid=payload]')).toContain('<script>');
    await page.goto(`${base}/#/jobs?type=xss`);
    await page.waitForSelector(`tr[data-job="${id}"]`);
    expect(await page.textContent(`tr[data-job="${id}"] .row-summary`)).toContain('<img');
    const dom = await page.evaluate(() => ({ imgs: document.querySelectorAll('img').length, scripts: document.querySelectorAll('script').length, pwned: (window as unknown as { __pwned?: number }).__pwned ?? 0 }));
    expect(dom).toEqual({ imgs: 0, scripts: 1, pwned: 0 });
    expect(w.dialogs).toEqual([]);
    expect(w.csp).toEqual([]);
  });

  it('CSRF: a form POST from a page on another origin is refused and changes nothing', async () => {
    const id = await enqueue('csrf');
    const page = await signedIn('admin'); // the victim's browser holds an admin session cookie
    const target = `${base}${API}/jobs/${id}/cancel`;
    const evil = http.createServer((_, res) => {
      res.writeHead(200, { 'Content-Type': 'text/html' });
      res.end(
        `<form method="POST" action="${target}" enctype="text/plain"><input name='{"reason":"csrf","x":"' value='"}'></form>` +
          `<script>document.forms[0].submit()</script>`,
      );
    });
    await new Promise<void>((r) => evil.listen(0, '127.0.0.1', r));
    try {
      const answered = page.waitForResponse((r) => r.url() === target);
      await page.goto(`http://127.0.0.1:${(evil.address() as AddressInfo).port}/`);
      const res = await answered;
      expect(res.status()).toBe(403);
      expect(JSON.parse(await res.text()).error.code).toBe('CSRF_REJECTED'); // the cookie went along (same site, other port): the server's CSRF wall refused it
    } finally {
      evil.close();
    }
    expect(await stateOf(id)).toBe('queued');
  });
});

describe('one stream, restarts, expiry', () => {
  it('the multiplexed stream delivers every change for 200 jobs on one connection', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 200; i++) ids.push(await enqueue('mux', { i }));
    const page = await signedIn('read');
    // Start from a view that follows no job (sign-in lands on the list of all jobs, which has its own stream).
    await page.goto(`${base}/#/dashboard`);
    await page.waitForSelector('[data-testid=conn].conn-idle');
    const streams: string[] = [];
    let polls = 0;
    page.on('request', (r) => {
      if (r.url().includes(`${API}/stream/jobs`)) streams.push(r.url());
      if (/\/first-signal$/.test(r.url())) polls++;
    });
    await page.goto(`${base}/#/jobs?type=mux&limit=200`);
    await page.waitForFunction(() => document.querySelectorAll('tr[data-kind="queued"]').length === 200, null, { timeout: 30_000 });
    await page.waitForSelector('[data-testid=conn].conn-live', { timeout: 15_000 });
    for (let i = 0; i < 200; i++) {
      const c = (await ledger.claim('acme', { workerId: 'w-mux', types: ['mux'] }))!;
      await ledger.complete('acme', c.job.id, { workerId: 'w-mux', leaseToken: c.leaseToken });
    }
    await page.waitForFunction(() => document.querySelectorAll('tr[data-kind="succeeded"]').length === 200, null, { timeout: 60_000 });
    expect(streams.length).toBe(1);
    expect(new URL(streams[0]!).searchParams.get('ids')!.split(',').sort()).toEqual([...ids].sort());
    console.log(`200 jobs: ${streams.length} stream connection, ${polls} fallback polls`);
  }, 120_000);

  it('the server restarts and the page reconnects and catches up', async () => {
    const id = await enqueue('restart');
    const page = await signedIn('read');
    await page.goto(`${base}/#/jobs/${id}`);
    await waitKind(page, 'queued');
    await page.waitForSelector('[data-testid=conn].conn-live');
    const port = srv.port;
    await srv.close();
    // A change while the server is down: the page must catch up on it after the restart.
    const claim = (await ledger.claim('acme', { workerId: 'w-restart', types: ['restart'] }))!;
    await page.waitForSelector('[data-testid=conn]:not(.conn-live)', { timeout: 15_000 });
    srv = await serve(port);
    await waitKind(page, 'started', 30_000);
    await page.waitForSelector('[data-testid=conn].conn-live', { timeout: 30_000 });
    await ledger.progress('acme', id, { workerId: 'w-restart', leaseToken: claim.leaseToken }, { phase: 'report', itemsDone: 1, itemsTotal: 2 });
    await waitKind(page, 'phase');
  }, 90_000);

  it('an expired session goes back to sign-in', async () => {
    const page = await signedIn('read');
    await page.goto(`${base}/#/jobs`);
    await page.waitForSelector('main table');
    const csrf = await page.evaluate(async () => (await (await fetch('/api/v1/console/session')).json()).session.csrf_token as string);
    await db.pool.query(`UPDATE okit.console_sessions SET expires_at = created_at + interval '1 microsecond' WHERE csrf_token = $1`, [csrf]);
    await page.goto(`${base}/#/dashboard`);
    await page.waitForSelector('.signin', { timeout: 20_000 });
    expect(await page.textContent('.signin .notice')).toMatch(/expired|signed out/);
    await page.reload();
    await page.waitForSelector('.signin');
    expect(await page.locator('[data-testid=who]').count()).toBe(0);
  }, 60_000);
});
