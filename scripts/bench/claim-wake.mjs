// Claims woken by NOTIFY (issue 13): enqueue → claimed latency at 1 idle worker, and the claim
// rate of an idle fleet.
//
// Latency. One worker parks `POST /workers/claim` with wait=10 (node:http, keep-alive); the
// bench enqueues one job through a Ledger on its own pool; t0 is stamped just before that
// transaction's COMMIT is issued (stampCommits), t1 when the claim's answer is fully read. The
// same-run baseline is a bare `pg` client LISTENing on the ledger's channel: the NOTIFY of the
// same commit. A second baseline is what a polling worker would see: a claim every 1 s (the
// demo's old loop), whose expected latency is half its interval plus one claim round trip.
// Fleet. N workers (default 50) each loop on claim with wait=W (default 5 s) for D seconds
// (default 30) with nothing to claim; the claim rate is the HTTP claim calls and the database
// transactions (pg_stat_database.xact_commit, every query counted) per worker per wait period.
// Same machine, same run; the 2 shared cores carry Postgres, the server and this load generator.
// Usage: node scripts/bench/claim-wake.mjs [rounds=200] [fleet=50] [waitSeconds=5] [seconds=30]
import http from 'node:http';
import pg from 'pg';
import { createPool } from '../../dist/db/pool.js';
import { Ledger } from '../../dist/ledger/ledger.js';
import { NOTIFY_CHANNEL } from '../../dist/ledger/writer.js';
import { createToken } from '../../dist/http/tokens.js';
import { OkitClient } from '../../dist/worker/client.js';
import { OkitWorker } from '../../dist/worker/worker.js';
import { createDatabase, round, spawnServer, stampCommits, startPostgres, summary, table, until, writeResult, sleep } from './lib.mjs';

const ROUNDS = Number(process.argv[2] ?? 200);
const FLEET = Number(process.argv[3] ?? 50);
const WAIT = Number(process.argv[4] ?? 5);
const SECONDS = Number(process.argv[5] ?? 30);
const API = '/api/v1/orchestrator';
const TENANT = 'bench';
const stamp = stampCommits();

function claim(ctx, body) {
  return new Promise((resolve, reject) => {
    const data = JSON.stringify(body);
    const req = http.request(
      { agent: ctx.agent, host: ctx.host, port: ctx.port, method: 'POST', path: `${API}/workers/claim`, headers: { Authorization: `Bearer ${ctx.token}`, 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(data) } },
      (res) => {
        let s = '';
        res.setEncoding('utf8');
        res.on('data', (c) => (s += c));
        res.on('end', () => resolve({ t: performance.now(), status: res.statusCode, body: s ? JSON.parse(s) : null }));
      },
    );
    req.on('error', reject);
    req.end(data);
  });
}

const pgsrv = await startPostgres();
let server;
const out = {};
try {
  const url = await createDatabase(pgsrv.url, 'bench_claim', { migrated: true });
  const pool = createPool(url, { max: 4 });
  const ledger = new Ledger(pool);
  const { token } = await createToken(pool, { tenant: TENANT, scope: 'worker' });
  server = await spawnServer(url);
  const agent = new http.Agent({ keepAlive: true, maxSockets: FLEET + 10 });
  const ctx = { agent, host: server.host, port: server.port, token };

  // ------------------------------------------------------------ latency at 1 idle worker
  const listen = new pg.Client({ connectionString: url });
  await listen.connect();
  let notifiedAt = NaN;
  listen.on('notification', () => (notifiedAt = performance.now()));
  await listen.query(`LISTEN ${NOTIFY_CHANNEL}`);
  const okit = [];
  const base = [];
  for (let i = 0; i < ROUNDS; i++) {
    const p = claim(ctx, { worker_id: 'w1', types: ['lat'], wait: 10, lease_seconds: 30 });
    await until(async () => (await server.stats()).claimWaiters >= 1, 10_000, 'a parked claim');
    await sleep(5);
    notifiedAt = NaN;
    await ledger.enqueue(TENANT, { type: 'lat' });
    const t0 = stamp.at;
    const r = await p;
    if (!r.body?.job) throw new Error(`round ${i}: no job (${r.status})`);
    okit.push(r.t - t0);
    await until(async () => Number.isFinite(notifiedAt), 5000, 'the NOTIFY');
    base.push(notifiedAt - t0);
    await ledger.complete(TENANT, r.body.job.id, { workerId: 'w1', leaseToken: r.body.lease_token });
  }
  await listen.end();
  const lat = { okit: summary(okit), listen: summary(base) };
  // A 1 s polling loop: uniform arrival within the interval, plus one claim round trip.
  const rt = [];
  for (let i = 0; i < 50; i++) {
    const t = performance.now();
    await claim(ctx, { worker_id: 'w1', types: ['nothing'] });
    rt.push(performance.now() - t);
  }
  const claimRt = summary(rt).p50;
  lat.poll1s = { p50: 500 + claimRt, note: 'expected: half the 1 s interval + one claim round trip' };
  console.log('\nenqueue → claimed, ms (1 idle worker)');
  table([
    { path: 'okit claim long-poll', ...Object.fromEntries(Object.entries(lat.okit).map(([k, x]) => [k, round(x)])) },
    { path: 'bare LISTEN (baseline)', ...Object.fromEntries(Object.entries(lat.listen).map(([k, x]) => [k, round(x)])) },
  ]);
  console.log(`ratio p50 okit / bare LISTEN: ${round(lat.okit.p50 / lat.listen.p50)}; a 1 s polling loop: ~${round(lat.poll1s.p50)} ms p50`);
  out.latency = { rounds: ROUNDS, ...lat, ratio_p50: round(lat.okit.p50 / lat.listen.p50) };

  // ------------------------------------------------------------ idle fleet
  const xact = async () => Number((await pool.query('SELECT xact_commit::text AS x FROM pg_stat_database WHERE datname = current_database()')).rows[0].x);
  let stop = false;
  let calls = 0;
  const loops = Array.from({ length: FLEET }, (_, i) =>
    (async () => {
      while (!stop) {
        await claim(ctx, { worker_id: `idle-${i}`, types: ['idle'], wait: WAIT });
        calls++;
      }
    })(),
  );
  await until(async () => (await server.stats()).claimWaiters >= FLEET, 30_000, 'the fleet parked');
  const c0 = calls;
  const x0 = await xact();
  const before = (await server.stats()).claimStats;
  await sleep(SECONDS * 1000);
  const x1 = await xact();
  const c1 = calls;
  const after = (await server.stats()).claimStats;
  stop = true;
  await Promise.all(loops);
  const periods = SECONDS / WAIT;
  const fleet = {
    workers: FLEET,
    wait_seconds: WAIT,
    seconds: SECONDS,
    claim_calls: c1 - c0,
    claim_calls_per_worker_per_wait: round((c1 - c0) / FLEET / periods),
    // Includes the two reads above and the server's own sweeper: every transaction counts.
    transactions: x1 - x0 - 1,
    transactions_per_worker_per_wait: round((x1 - x0 - 1) / FLEET / periods),
    due_queries: after.dueQueries - before.dueQueries,
    wakes: after.wakes - before.wakes,
    polling_1s_would_be: round(WAIT),
  };
  console.log(`\nidle fleet: ${FLEET} workers, wait ${WAIT} s, ${SECONDS} s`);
  table([fleet]);
  out.fleet = fleet;

  // ------------------------------------------------------------ cancel → handler aborted
  // An OkitWorker whose handler waits on ctx.signal; t0 just before the admin's cancel call.
  const { token: adminToken } = await createToken(pool, { tenant: TENANT, scope: 'admin' });
  const admin = new OkitClient({ url: server.baseUrl, token: adminToken });
  const cancel = {};
  for (const [name, watchCancel, rounds] of [['pushed (first-signal long-poll)', true, 40], ['heartbeat only (every 1 s)', false, 10]]) {
    const times = [];
    let started = null;
    const worker = new OkitWorker({
      url: server.baseUrl, token, types: ['cancel'], leaseSeconds: 3, heartbeatSeconds: 1, claimWaitSeconds: 2, watchCancel,
      handler: (job, ctx) => new Promise((resolve) => {
        started?.(job.id);
        ctx.signal.addEventListener('abort', () => { times.push(performance.now()); resolve(undefined); }, { once: true });
      }),
    });
    const run = worker.run();
    const lat = [];
    for (let i = 0; i < rounds; i++) {
      const running = new Promise((r) => (started = r));
      const { job } = await ledger.enqueue(TENANT, { type: 'cancel' });
      await running;
      await sleep(watchCancel ? 50 : 100 + Math.random() * 900); // the watch is parked; the heartbeat at a random phase
      const n = times.length;
      const t0 = performance.now();
      await admin.cancel(job.id, { reason: 'bench' });
      await until(async () => times.length > n, 10_000, 'the abort');
      lat.push(times[n] - t0);
    }
    await worker.stop();
    await run;
    cancel[name] = summary(lat);
  }
  console.log('\ncancel → handler aborted, ms');
  table(Object.entries(cancel).map(([path, x]) => ({ path, ...Object.fromEntries(Object.entries(x).map(([k, y]) => [k, round(y)])) })));
  out.cancel = cancel;
  await pool.end();
} finally {
  await server?.stop();
  await pgsrv.stop();
}
writeResult('claim-wake', out);
