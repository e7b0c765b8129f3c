// Signal latency: from the commit of a transition to a long-poll client and an SSE client
// receiving it, at 1, 100 and 1,000 concurrent watchers of the job; the same-run baseline is a
// bare `pg` client LISTENing on the channel for the same NOTIFY.
//
// Method. The writer (a Ledger on its own pool), the watchers (node:http over 127.0.0.1 with a
// keep-alive Agent, one socket per watcher) and the baseline LISTEN client live in this process,
// so all times come from one clock; the server runs in its own process (serve-child.mjs, the
// same startServer() as `okit serve`). t0 is stamped just before the transaction's
// `SELECT pg_notify(..); COMMIT` is issued (stampCommits() in lib.mjs); a delivery is the moment
// a watcher holds the new ETag (long-poll: response fully read; SSE: the event's chunk arrived).
// One transition at a time: the next commit waits until every watcher has received the previous
// one and the server again holds N armed waiters. The machine has 2 cores shared by Postgres,
// the server and this load generator, so the load generator's own cost is in the figures.
// Usage: node scripts/bench/signal-latency.mjs [watchers=1,100,1000] [modes=long-poll,sse]
// OKIT_BENCH_PROF=DIR writes a V8 CPU profile of the server process into DIR.
import http from 'node:http';
import pg from 'pg';
import { createPool, createClient } from '../../dist/db/pool.js';
import { Ledger } from '../../dist/ledger/ledger.js';
import { createToken } from '../../dist/http/tokens.js';
import { etagOf } from '../../dist/signals/projection.js';
import { createDatabase, round, spawnServer, stampCommits, startPostgres, summary, table, until, writeResult, sleep } from './lib.mjs';

const COUNTS = (process.argv[2] ?? '1,100,1000').split(',').map(Number);
const MODES = (process.argv[3] ?? 'long-poll,sse').split(',');
const API = '/api/v1/orchestrator';
const TENANT = 'bench';
const roundsFor = (n) => (n === 1 ? 300 : n <= 100 ? 60 : 30);
// For the telemetry benchmark: watchers that declare a surface (X-Okit-Surface), results under another name.
const SURFACE = process.env.OKIT_BENCH_SURFACE ? { 'X-Okit-Surface': process.env.OKIT_BENCH_SURFACE } : {};
const RESULT = process.env.OKIT_BENCH_RESULT ?? 'signal-latency';

const stamp = stampCommits();

/** A long-poll watcher: GET ?wait=30 with If-None-Match, again and again. */
function longPollWatcher(ctx, jobId, etag, onEtag) {
  let stopped = false;
  let req = null;
  const loop = (cur) => {
    if (stopped) return;
    req = http.get(
      { agent: ctx.agent, host: ctx.host, port: ctx.port, path: `${API}/jobs/${jobId}/first-signal?wait=30`, headers: { Authorization: `Bearer ${ctx.token}`, 'If-None-Match': cur, ...SURFACE } },
      (res) => {
        res.resume();
        res.on('end', () => {
          const t = performance.now();
          const next = res.headers.etag ?? cur;
          if (res.statusCode === 200 && next !== cur) onEtag(next, t);
          loop(next);
        });
      },
    );
    req.on('error', () => undefined);
  };
  loop(etag);
  return () => {
    stopped = true;
    req?.destroy();
  };
}

/** An SSE watcher: one stream, Last-Event-ID = the ETag it already holds. */
function sseWatcher(ctx, jobId, etag, onEtag) {
  let buf = '';
  const req = http.get(
    { agent: ctx.agent, host: ctx.host, port: ctx.port, path: `${API}/stream/jobs/${jobId}/first-signal`, headers: { Authorization: `Bearer ${ctx.token}`, Accept: 'text/event-stream', 'Last-Event-ID': etag, ...SURFACE } },
    (res) => {
      res.setEncoding('utf8');
      res.on('data', (chunk) => {
        const t = performance.now();
        buf += chunk;
        let i;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, i);
          buf = buf.slice(i + 2);
          const m = /^id: (.*)$/m.exec(block);
          if (m) onEtag(m[1], t);
        }
      });
    },
  );
  req.on('error', () => undefined);
  return () => req.destroy();
}

async function measure(ctx, mode, n) {
  const { ledger, server, listen } = ctx;
  const { job } = await ledger.enqueue(TENANT, { type: 'latency', payload: { mode, n } });
  await ledger.claim(TENANT, { workerId: 'writer', types: ['latency'], leaseSeconds: 3600 });
  let etag = etagOf(await ledger.getSnapshot(TENANT, job.id));
  // Deliveries may arrive before progress() returns (the NOTIFY precedes the COMMIT reply),
  // so every (etag, time) is kept and matched against the expected ETag afterwards.
  let seen = [];
  const onEtag = (e, t) => seen.push([e, t]);
  const watcher = mode === 'long-poll' ? longPollWatcher : sseWatcher;
  const stops = Array.from({ length: n }, () => watcher(ctx, job.id, etag, onEtag));
  const armed = async () => (await server.stats()).waiters >= n;
  await until(armed, 120_000, `${n} armed waiters`);
  const okit = [];
  const base = [];
  const commitRtt = [];
  const rounds = roundsFor(n);
  for (let r = 0; r < rounds; r++) {
    seen = [];
    let baseAt = NaN;
    listen.onJob = (id, t) => id === job.id && (baseAt = t);
    const snap = await ledger.progress(TENANT, job.id, 'writer', { phase: 'analyze', itemsDone: r + 1, itemsTotal: rounds });
    const returned = performance.now();
    const t0 = stamp.at;
    const expect = etagOf(snap);
    const got = () => seen.filter(([e]) => e === expect);
    await until(() => got().length >= n && Number.isFinite(baseAt), 30_000, `round ${r}: ${n} deliveries`);
    for (const [, t] of got()) okit.push(t - t0);
    base.push(baseAt - t0);
    commitRtt.push(returned - t0);
    etag = expect;
    await until(armed, 30_000, 're-armed waiters');
    await sleep(n >= 1000 ? 20 : 2);
  }
  for (const s of stops) s();
  await until(async () => (await server.stats()).waiters === 0, 30_000, 'waiters gone');
  const o = summary(okit);
  const b = summary(base);
  const c = summary(commitRtt);
  return {
    mode,
    watchers: n,
    rounds,
    deliveries: o.n,
    p50_ms: round(o.p50),
    p95_ms: round(o.p95),
    p99_ms: round(o.p99),
    max_ms: round(o.max),
    pg_p50_ms: round(b.p50),
    pg_p99_ms: round(b.p99),
    ratio_p50: round(o.p50 / b.p50),
    ratio_p99: round(o.p99 / b.p99),
    commit_rtt_p50_ms: round(c.p50),
    samples: okit.map((x) => round(x, 3)),
    pg_samples: base.map((x) => round(x, 3)),
  };
}

const pgsrv = await startPostgres();
const rows = [];
let server;
try {
  const url = await createDatabase(pgsrv.url, 'bench_latency', { migrated: true });
  const pool = createPool(url, { max: 4 });
  const ledger = new Ledger(pool);
  const { token } = await createToken(pool, { tenant: TENANT, scope: 'read' });
  server = await spawnServer(url, { execArgv: process.env.OKIT_BENCH_PROF ? ['--cpu-prof', '--cpu-prof-dir=' + process.env.OKIT_BENCH_PROF] : [] });
  // Baseline: a bare pg client LISTENing on the same channel, in this process.
  const listen = { onJob: () => undefined };
  const lc = createClient(url, 'bench-listen');
  lc.on('error', () => undefined);
  await lc.connect();
  lc.on('notification', (m) => {
    const t = performance.now();
    for (const id of m.payload.split(' ').slice(1)) listen.onJob(id, t);
  });
  await lc.query('LISTEN okit_signal');
  const agent = new http.Agent({ keepAlive: true, maxSockets: Infinity, maxFreeSockets: 2000 });
  const ctx = { ledger, server, listen, agent, token, host: server.host, port: server.port };
  for (const mode of MODES) {
    for (const n of COUNTS) {
      const r = await measure(ctx, mode, n);
      rows.push(r);
      console.error(`  ${mode} @${n}: p50 ${r.p50_ms} ms, p99 ${r.p99_ms} ms (pg LISTEN p50 ${r.pg_p50_ms} ms)`);
    }
  }
  agent.destroy();
  await lc.end();
  await pool.end();
} finally {
  await server?.stop();
  await pgsrv.stop();
}
table(rows.map(({ samples, pg_samples, ...r }) => r));
const at1000 = rows.filter((r) => r.watchers === 1000);
const targets = at1000.map((r) => ({ mode: r.mode, p50_ok: r.p50_ms <= 5, p99_ok: r.p99_ms <= 25 }));
console.log('\ntargets at 1,000 watchers (p50 ≤ 5 ms, p99 ≤ 25 ms):', JSON.stringify(targets));
writeResult(RESULT, {
  method:
    'latency = watcher holds the new ETag − just before the transaction\'s "pg_notify; COMMIT" is issued; all N watchers watch the one job being changed; one transition at a time; baseline = bare pg LISTEN client in the load-generator process; server in its own process; load generator, server and Postgres share 2 cores',
  targets: { p50_ms: 5, p99_ms: 25, at_watchers: 1000, met: targets },
  rows,
});
