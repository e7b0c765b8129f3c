// The console's time to first signal in Debian's Chromium (playwright-core, headless) against
// `okit serve` in its own process: for each of N job pages, opened fresh (new tab, empty cache),
//   - skeleton: first contentful paint (the static skeleton of index.html), ms from navigation;
//   - first signal: navigation start → the card showing the job's live signal;
// plus the page's own report (route entered → first live signal rendered), the figure it sends
// as surface `ui`. Targets (issue 16): skeleton ≤ 150 ms, first signal P50 < 2 s.
// Baseline, same run, alternating tabs: the first contentful paint of a one-line HTML page from
// bare node:http (what a new tab costs this browser on this machine before any okit code).
// Usage: node scripts/bench/console-ttfs.mjs [pages=30]   (build first; needs /usr/bin/chromium)
import http from 'node:http';
import { chromium } from 'playwright-core';
import { createPool } from '../../dist/db/pool.js';
import { Ledger } from '../../dist/ledger/ledger.js';
import { createToken } from '../../dist/http/tokens.js';
import { createDatabase, machine, round, spawnServer, startPostgres, summary, table, writeResult } from './lib.mjs';

const PAGES = Number(process.argv[2] ?? 30);
const pgc = await startPostgres();
const url = await createDatabase(pgc.url, 'bench_console', { migrated: true });
const pool = createPool(url, { max: 4 });
const ledger = new Ledger(pool);
const { token } = await createToken(pool, { tenant: 'bench', scope: 'read' });
const server = await spawnServer(url);
const bare = http.createServer((_, res) => {
  res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
  res.end('<!doctype html><html><head><meta charset="utf-8"><title>bare</title></head><body><p>bare node:http page</p></body></html>');
});
await new Promise((r) => bare.listen(0, '127.0.0.1', r));
const bareUrl = `http://127.0.0.1:${bare.address().port}/`;
const browser = await chromium.launch({ executablePath: process.env.OKIT_CHROMIUM ?? '/usr/bin/chromium', headless: true, args: ['--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu'] });
try {
  const ctx = await browser.newContext();
  const signin = await ctx.newPage();
  await signin.goto(`${server.baseUrl}/#/signin`);
  await signin.fill('#token', token);
  await signin.keyboard.press('Enter');
  await signin.waitForSelector('[data-testid=who]');
  await signin.close();
  const ids = [];
  for (let i = 0; i < PAGES + 3; i++) ids.push((await ledger.enqueue('bench', { type: 'console-bench', payload: { i } })).job.id);
  const fcp = [];
  const first = [];
  const reported = [];
  const bareFcp = [];
  const parts = { html: [], css: [], js: [] };
  for (const [i, id] of ids.entries()) {
    const page = await ctx.newPage(); // a new tab: empty sessionStorage, so no cached snapshot
    await page.goto(`${server.baseUrl}/#/jobs/${id}`);
    await page.waitForSelector('section.card[data-kind="queued"]:not(:has(.badge))');
    const m = await page.evaluate(() => {
      const nav = performance.getEntriesByType('navigation')[0];
      const paint = performance.getEntriesByName('first-contentful-paint')[0];
      const end = (f) => performance.getEntriesByType('resource').find((e) => e.name.endsWith(f))?.responseEnd ?? null;
      return { fcp: paint ? paint.startTime : null, now: performance.now(), navStart: nav ? nav.startTime : 0, ttfs: (window.__okitTtfs ?? [])[0] ?? null, html: nav ? nav.responseEnd : null, css: end('/console/app.css'), js: end('/console/app.js') };
    });
    // The first 3 pages warm up the browser and the server; they are not counted.
    if (i >= 3) {
      if (m.fcp !== null) fcp.push(m.fcp);
      first.push(m.now - m.navStart);
      if (m.ttfs !== null) reported.push(m.ttfs);
      parts.html.push(m.html);
      parts.css.push(m.css);
      parts.js.push(m.js);
    }
    await page.close();
    const b = await ctx.newPage();
    await b.goto(bareUrl);
    await b.waitForFunction(() => performance.getEntriesByName('first-contentful-paint').length > 0);
    if (i >= 3) bareFcp.push(await b.evaluate(() => performance.getEntriesByName('first-contentful-paint')[0].startTime));
    await b.close();
  }
  const rows = [
    ['baseline: bare node:http page, first contentful paint', summary(bareFcp)],
    ['  index.html received', summary(parts.html)],
    ['  app.css received', summary(parts.css)],
    ['  app.js received', summary(parts.js)],
    ['skeleton (first contentful paint)', summary(fcp)],
    ['first signal shown (from navigation)', summary(first)],
    ["page's own TTFS report (route → signal)", summary(reported)],
  ].map(([what, s]) => ({ measure: what, n: s.n, p50_ms: round(s.p50, 1), p95_ms: round(s.p95, 1), max_ms: round(s.max, 1) }));
  table(rows);
  // performance.now() at the check is a little after the card rendered: an upper bound.
  writeResult('console-ttfs', { pages: PAGES, machine: machine(), rows, targets: { skeleton_ms: 150, first_signal_p50_ms: 2000 } });
} finally {
  await browser.close();
  bare.close();
  await server.stop();
  await pool.end();
  await pgc.stop();
}
