// Fan-out: 10,000 concurrent long-poll waiters on one server, one job each; then every one of
// those jobs changes (a burst of cancels, as fast as the ledger takes them) and every waiter must
// end holding its job's new ETag (lost updates must be 0).
//
// Figures: the server process's resident memory idle, with all waiters armed, and at its peak
// (VmRSS/VmHWM from /proc, the server runs in its own process), against a bare node:http server
// holding the same number of pending requests (same run, same load generator); wake latency per
// job = the waiter holds the new ETag − the ledger call that changed the job returned, against a
// bare pg LISTEN client receiving the same NOTIFYs. Load generator, server and Postgres share the
// machine's cores. Usage: node scripts/bench/fanout.mjs [waiters=10000]
import { spawn } from 'node:child_process';
import http from 'node:http';
import { createPool, createClient } from '../../dist/db/pool.js';
import { Ledger } from '../../dist/ledger/ledger.js';
import { createToken } from '../../dist/http/tokens.js';
import { etagOf } from '../../dist/signals/signal.js';
import { createDatabase, procRss, round, sleep, spawnServer, startPostgres, summary, table, until, writeResult } from './lib.mjs';

const N = Number(process.argv[2] ?? 10_000);
const API = '/api/v1/orchestrator';
const TENANT = 'bench';
const mib = (b) => round(b / 2 ** 20, 1);

/** A bare node:http server that holds every request open until told to answer. */
const BARE = `
const http = require('node:http');
const held = [];
const srv = http.createServer((req, res) => { held.push(res); });
srv.listen(0, '127.0.0.1', () => process.send({ port: srv.address().port }));
process.on('message', (m) => {
  if (m === 'count') process.send({ count: held.length });
  if (m === 'answer') { for (const r of held.splice(0)) r.end('{"ok":true}'); process.send({ answered: true }); }
});`;

async function bareBaseline(n) {
  const child = spawn(process.execPath, ['-e', BARE], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const next = () => new Promise((r) => child.once('message', r));
  const { port } = await next();
  const idle = procRss(child.pid).rss;
  const agent = new http.Agent({ keepAlive: true, maxSockets: Infinity });
  let answered = 0;
  for (let i = 0; i < n; i += 500) {
    for (let k = i; k < Math.min(n, i + 500); k++) {
      http.get({ agent, host: '127.0.0.1', port, path: `/wait/${k}` }, (res) => {
        res.resume();
        res.on('end', () => answered++);
      }).on('error', () => undefined);
    }
    await until(async () => (child.send('count'), (await next()).count >= Math.min(n, i + 500)), 60_000, 'bare requests');
  }
  const armed = procRss(child.pid).rss;
  child.send('answer');
  await next();
  await until(() => answered >= n, 60_000, 'bare answers');
  const peak = procRss(child.pid).peak;
  agent.destroy();
  child.kill();
  return { idle, armed, peak };
}

const pgsrv = await startPostgres();
let server;
let result;
try {
  const url = await createDatabase(pgsrv.url, 'bench_fanout', { migrated: true });
  const pool = createPool(url, { max: 8 });
  const ledger = new Ledger(pool);
  const { token } = await createToken(pool, { tenant: TENANT, scope: 'admin' });

  console.error(`  enqueueing ${N} jobs…`);
  const jobs = [];
  for (let i = 0; i < N; i += 200) {
    const batch = await Promise.all(Array.from({ length: Math.min(200, N - i) }, (_, k) => ledger.enqueue(TENANT, { type: `fanout${(i + k) % 100}`, payload: { i: i + k } })));
    for (const { job } of batch) jobs.push({ id: job.id, etag: null, want: null, got: null, gotAt: NaN, changedAt: NaN, pgAt: NaN });
  }
  await Promise.all(jobs.map(async (j) => (j.etag = etagOf(await ledger.getSnapshot(TENANT, j.id)))));
  const byId = new Map(jobs.map((j) => [j.id, j]));

  server = await spawnServer(url);
  const idle = procRss(server.pid).rss;
  const agent = new http.Agent({ keepAlive: true, maxSockets: Infinity });
  let errors = 0;
  let timeouts = 0; // long-polls that ended in 304 after their 30 s wait and were re-issued
  const poll = (j, etag) => {
    http
      .get({ agent, host: server.host, port: server.port, path: `${API}/jobs/${j.id}/first-signal?wait=30`, headers: { Authorization: `Bearer ${token}`, 'If-None-Match': etag } }, (res) => {
        res.resume();
        res.on('end', () => {
          const t = performance.now();
          const e = res.headers.etag;
          if (res.statusCode === 200 && e !== etag) {
            j.got = e;
            j.gotAt = t;
            if (e === j.want || j.want === null) return; // the new signal is terminal: done
          }
          if (res.statusCode === 304) timeouts++;
          if (res.statusCode >= 400) errors++;
          poll(j, e ?? etag);
        });
      })
      .on('error', () => {
        errors++;
        setTimeout(() => poll(j, etag), 100);
      });
  };
  console.error(`  arming ${N} long-poll waiters…`);
  const tArm = performance.now();
  for (let i = 0; i < N; i += 500) {
    for (const j of jobs.slice(i, i + 500)) poll(j, j.etag);
    await until(async () => (await server.stats()).waiters >= Math.min(N, i + 500), 120_000, 'armed waiters');
  }
  const armSeconds = (performance.now() - tArm) / 1000;
  await sleep(500);
  const armed = procRss(server.pid).rss;

  // Baseline for wake latency: a bare pg LISTEN client in this process.
  const lc = createClient(url, 'bench-listen');
  lc.on('error', () => undefined);
  await lc.connect();
  lc.on('notification', (m) => {
    const t = performance.now();
    for (const id of m.payload.split(' ').slice(1)) {
      const j = byId.get(id);
      if (j) j.pgAt = t;
    }
  });
  await lc.query('LISTEN okit_signal');

  console.error(`  changing all ${N} jobs (cancel, 8 at a time)…`);
  const t0 = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      while (next < jobs.length) {
        const j = jobs[next++];
        const snap = await ledger.cancel(TENANT, j.id, { actor: 'bench', reason: 'fan-out' });
        j.want = etagOf(snap);
        j.changedAt = performance.now();
      }
    }),
  );
  const writeSeconds = (performance.now() - t0) / 1000;
  const delivered = () => jobs.filter((j) => j.got === j.want).length;
  await until(() => delivered() === N, 90_000, 'all deliveries').catch(() => undefined);
  const allSeconds = (performance.now() - t0) / 1000;
  const peak = procRss(server.pid).peak;
  const lost = N - delivered();
  await lc.end();
  agent.destroy();
  await server.stop();
  server = null;
  await pool.end();

  console.error('  bare node:http baseline…');
  const bare = await bareBaseline(N);

  const wake = summary(jobs.filter((j) => j.got === j.want).map((j) => j.gotAt - j.changedAt));
  const pgWake = summary(jobs.filter((j) => Number.isFinite(j.pgAt)).map((j) => j.pgAt - j.changedAt));
  const rows = [
    { server: 'okit', waiters: N, idle_rss_mib: mib(idle), armed_rss_mib: mib(armed), peak_rss_mib: mib(peak), kib_per_waiter: round((armed - idle) / N / 1024, 2) },
    { server: 'bare node:http', waiters: N, idle_rss_mib: mib(bare.idle), armed_rss_mib: mib(bare.armed), peak_rss_mib: mib(bare.peak), kib_per_waiter: round((bare.armed - bare.idle) / N / 1024, 2) },
  ];
  table(rows);
  const wakeRows = [
    { path: 'okit long-poll', p50_ms: round(wake.p50), p95_ms: round(wake.p95), p99_ms: round(wake.p99), max_ms: round(wake.max), n: wake.n },
    { path: 'bare pg LISTEN', p50_ms: round(pgWake.p50), p95_ms: round(pgWake.p95), p99_ms: round(pgWake.p99), max_ms: round(pgWake.max), n: pgWake.n },
  ];
  console.log('');
  table(wakeRows);
  console.log(
    `\n${N} waiters armed in ${armSeconds.toFixed(1)} s; ${N} jobs changed in ${writeSeconds.toFixed(1)} s (${Math.round(N / writeSeconds)}/s), ` +
      `all delivered ${allSeconds.toFixed(1)} s after the first change; lost updates: ${lost}; HTTP errors: ${errors}; long-poll timeouts re-polled: ${timeouts}; ` +
      `memory ratio okit/bare (per waiter): ${round((armed - idle) / (bare.armed - bare.idle), 2)}`,
  );
  result = {
    waiters: N,
    method:
      'server in its own process (same startServer() as okit serve), RSS from /proc/PID/status; wake latency = waiter holds the new ETag − the cancel() that changed its job returned (so it may be < 0 when the NOTIFY beats the COMMIT reply); jobs changed by 8 concurrent cancels',
    memory: rows,
    wake: wakeRows,
    arm_seconds: round(armSeconds),
    change_seconds: round(writeSeconds),
    all_delivered_seconds: round(allSeconds),
    lost_updates: lost,
    http_errors: errors,
    long_poll_timeouts: timeouts,
    memory_ratio_per_waiter: round((armed - idle) / (bare.armed - bare.idle), 2),
  };
} finally {
  await server?.stop();
  await pgsrv.stop();
}
writeResult('fanout', result);
if (result.lost_updates !== 0) process.exitCode = 1;
