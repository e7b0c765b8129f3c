// What TTFS telemetry and /metrics cost, measured against the same server with telemetry off
// (`okit serve --no-telemetry`) in the same run:
//   1. first-signal GET throughput, telemetry on vs off, alternating rounds; two request kinds:
//      undeclared (curl, workers: metrics only) and declared first requests (X-Okit-Surface, no
//      ETag: metrics, Server-Timing and one queued ttfs_events row per answer, the worst case);
//   2. GET /metrics with 100,000 jobs in the ledger: every scrape refreshing the database-backed
//      gauges (dbCacheMs 0, the worst case) and the default 5 s cache;
//   3. long-poll delivery latency (signal-latency.mjs at 1 and 100 watchers), telemetry on vs off,
//      alternating runs.
// Throughput on a shared 2-core machine drifts between rounds by more than the effect measured,
// so each round also records the server process's CPU time per request (/proc/PID/stat), which
// background load disturbs far less.
// Usage: node scripts/bench/telemetry.mjs [seconds=3] [connections=32] [rounds=6]
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { createPool } from '../../dist/db/pool.js';
import { Ledger } from '../../dist/ledger/ledger.js';
import { createToken } from '../../dist/http/tokens.js';
import { createDatabase, getBenchJob, httpLoad, RESULTS, ROOT, round, spawnServer, startPostgres, summary, table, writeResult } from './lib.mjs';

const SECONDS = Number(process.argv[2] ?? 3);
const CONNS = Number(process.argv[3] ?? 32);
const ROUNDS = Number(process.argv[4] ?? 6);
const API = '/api/v1/orchestrator';
const JOBS = 100_000;
const median = (xs) => summary(xs).p50;

/** utime + stime of a process, in seconds (clock ticks of 1/100 s on Linux). */
function cpuSeconds(pid) {
  const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const parts = f.slice(f.lastIndexOf(')') + 2).split(' ');
  return (Number(parts[11]) + Number(parts[12])) / 100;
}

/** One load run against `server`, with the server's CPU microseconds per request. */
async function measured(server, request) {
  const c0 = cpuSeconds(server.pid);
  const r = await httpLoad(server.port, request, SECONDS, CONNS);
  const cpu = cpuSeconds(server.pid) - c0;
  // httpLoad measures after a 0.5 s warm-up; the CPU window includes it, so scale by the requests of the whole window.
  return { ...r, cpu_us_per_req: round((cpu * 1e6) / (r.req_per_s * (SECONDS + 0.5)), 1) };
}

async function getThroughput(adminUrl) {
  const url = await createDatabase(adminUrl, 'bench_tel_get', { migrated: true });
  const pool = createPool(url, { max: 4 });
  const ledger = new Ledger(pool);
  const { token } = await createToken(pool, { tenant: 'bench', scope: 'read' });
  const job = await getBenchJob(ledger);
  const on = await spawnServer(url, { env: { OKIT_BENCH_TELEMETRY: 'on' } });
  const off = await spawnServer(url, { env: { OKIT_BENCH_TELEMETRY: 'off' } });
  const path = `${API}/jobs/${job.id}/first-signal`;
  const req = (extra) => Buffer.from(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${token}\r\nAccept: application/json\r\n${extra}\r\n`);
  const cases = [
    ['undeclared (metrics only)', req('')],
    ['declared first requests (metrics + a row each)', req('X-Okit-Surface: cli\r\n')],
  ];
  const rounds = [];
  const rows = [];
  try {
    for (const [name, request] of cases) {
      const ratios = [];
      const cpuRatios = [];
      const onRates = [];
      const offRates = [];
      const onCpu = [];
      const offCpu = [];
      for (let r = 0; r < ROUNDS; r++) {
        // Alternate which goes first, so drift on the shared machine hits both alike.
        const onFirst = r % 2 === 1;
        const a = await measured(onFirst ? on : off, request);
        const b = await measured(onFirst ? off : on, request);
        const [o, f] = onFirst ? [a, b] : [b, a];
        onRates.push(o.req_per_s);
        offRates.push(f.req_per_s);
        onCpu.push(o.cpu_us_per_req);
        offCpu.push(f.cpu_us_per_req);
        ratios.push(o.req_per_s / f.req_per_s);
        cpuRatios.push(f.cpu_us_per_req / o.cpu_us_per_req);
        rounds.push({ case: name, round: r + 1, on_req_per_s: o.req_per_s, off_req_per_s: f.req_per_s, ratio: round(o.req_per_s / f.req_per_s, 3), on_cpu_us: o.cpu_us_per_req, off_cpu_us: f.cpu_us_per_req });
        console.error(`  ${name} round ${r + 1}: on ${o.req_per_s}/s (${o.cpu_us_per_req} µs CPU/req), off ${f.req_per_s}/s (${f.cpu_us_per_req} µs), ratio ${round(o.req_per_s / f.req_per_s, 3)}`);
      }
      rows.push({
        case: name,
        on_req_per_s: median(onRates),
        off_req_per_s: median(offRates),
        ratio_median: round(median(ratios), 3),
        ratio_total: round(onRates.reduce((x, y) => x + y, 0) / offRates.reduce((x, y) => x + y, 0), 3),
        on_cpu_us_per_req: median(onCpu),
        off_cpu_us_per_req: median(offCpu),
        cpu_ratio: round(median(cpuRatios), 3),
        target: '>= 0.95',
        met: median(ratios) >= 0.95,
      });
    }
    const stats = await on.stats();
    const { rows: stored } = await pool.query('SELECT count(*)::int AS n FROM okit.ttfs_events');
    return { rows, rounds, telemetry: { ...stats.telemetry, rows_in_table: stored[0].n } };
  } finally {
    await on.stop();
    await off.stop();
    await pool.end();
  }
}

async function seedJobs(pool) {
  // Raw job rows (the scrape counts jobs; it reads no history): 20 tenants, 25 types; a ledger's
  // usual shape: most jobs finished, a queue of about 1 % waiting, throttled or running.
  await pool.query(
    `INSERT INTO okit.jobs (id, tenant, type, payload, payload_sha256, max_attempts, attempt, state, not_before, created_at, updated_at, history_n, last_hash, lease_owner, lease_expires_at)
     SELECT gen_random_uuid(), 't' || (i % 20), 'type-' || (i % 25), '{}', repeat('0', 64), 3, s.attempt, s.state, now(), now(), now(), 1, repeat('0', 64),
            CASE WHEN s.state = 'running' THEN 'w' END, CASE WHEN s.state = 'running' THEN now() + interval '1 hour' END
     FROM generate_series(1, $1) i
     CROSS JOIN LATERAL (SELECT CASE WHEN i % 300 = 0 THEN 'queued' WHEN i % 300 = 1 THEN 'throttled' WHEN i % 300 = 2 THEN 'running'
                                     WHEN i % 20 = 3 THEN 'failed' WHEN i % 20 = 4 THEN 'dead_letter' WHEN i % 20 = 5 THEN 'canceled' ELSE 'succeeded' END AS state,
                                CASE WHEN i % 300 = 2 OR i % 20 IN (3, 4) THEN 1 ELSE 0 END AS attempt) s`,
    [JOBS],
  );
  await pool.query(
    `INSERT INTO okit.throttles (tenant, host, capacity, base_refill_per_sec, refill_per_sec, tokens, updated_at)
     SELECT 't' || t, 'host-' || h || '.example', 10, 1, 1, 3, now() FROM generate_series(0, 19) t, generate_series(0, 4) h`,
  );
  await pool.query('VACUUM ANALYZE okit.jobs');
}

async function scrapes(server, token, n, gapMs = 0) {
  const times = [];
  let bytes = 0;
  let series = 0;
  let waitingMs = NaN;
  let finishedMs = NaN;
  for (let i = 0; i < n; i++) {
    if (gapMs) await new Promise((res) => setTimeout(res, gapMs));
    const t0 = performance.now();
    const r = await fetch(server.baseUrl + '/metrics', { headers: { Authorization: `Bearer ${token}` } });
    const text = await r.text();
    times.push(performance.now() - t0);
    if (r.status !== 200) throw new Error(`/metrics answered ${r.status}`);
    bytes = Buffer.byteLength(text);
    series = text.split('\n').filter((l) => l && !l.startsWith('#')).length;
    waitingMs = Number(/^okit_metrics_db_query_seconds\{query="waiting"\} (\S+)$/m.exec(text)?.[1]) * 1000;
    finishedMs = Number(/^okit_metrics_db_query_seconds\{query="finished"\} (\S+)$/m.exec(text)?.[1]) * 1000;
  }
  return { times, bytes, series, waitingMs, finishedMs };
}

async function metricsScrape(adminUrl) {
  const url = await createDatabase(adminUrl, 'bench_tel_metrics', { migrated: true });
  const pool = createPool(url, { max: 4 });
  await seedJobs(pool);
  const ledger = new Ledger(pool);
  const { token } = await createToken(pool, { tenant: 'ops', scope: 'metrics' });
  const uncached = await spawnServer(url, { env: { OKIT_BENCH_METRICS_DB_CACHE_MS: '0', OKIT_BENCH_METRICS_FINISHED_CACHE_MS: '0' } });
  const cached = await spawnServer(url, {});
  const plain = await spawnServer(url, {}); // the same 100,000 jobs, no TTFS label series
  const rows = [];
  try {
    // Label series as a busy server has them: 20 tenants, each surface, several kinds.
    for (let t = 0; t < 20; t++) {
      const tenant = `t${t}`;
      const read = (await createToken(pool, { tenant, scope: 'read' })).token;
      const { job } = await ledger.enqueue(tenant, { type: 'scrape' });
      for (const srv of [uncached, cached])
        for (const surface of ['ui', 'cli', 'ci']) await fetch(`${srv.baseUrl}${API}/jobs/${job.id}/first-signal`, { headers: { Authorization: `Bearer ${read}`, 'X-Okit-Surface': surface } });
      const events = ['queued', 'started', 'failed', 'succeeded'].flatMap((kind) => ['ui', 'cli', 'ci'].map((surface) => ({ surface, event_type: 'signal.rendered', ttfs_ms: 100 + t * 150, job_id: job.id, kind })));
      for (const srv of [uncached, cached])
        await fetch(`${srv.baseUrl}${API}/telemetry/ttfs`, { method: 'POST', headers: { Authorization: `Bearer ${read}`, 'Content-Type': 'application/json' }, body: JSON.stringify({ events }) });
    }
    for (const [name, srv] of [
      ['every scrape queries everything (no caching)', uncached],
      ['default (queue 5 s, finished jobs 60 s in the background)', cached],
      ['default, before any first-signal traffic (orchestrator and Node metrics only)', plain],
    ]) {
      await scrapes(srv, token, 3); // warm-up
      // As Prometheus would: one scrape after another, a little apart (the default cache then
      // serves some from memory and refreshes the queue query for others).
      const s = await scrapes(srv, token, 30, 200);
      const l = summary(s.times);
      rows.push({ scrape: name, jobs: JOBS, p50_ms: round(l.p50), p95_ms: round(l.p95), max_ms: round(l.max), waiting_query_ms: round(s.waitingMs), finished_query_ms: round(s.finishedMs), exposition_kib: round(s.bytes / 1024, 1), samples: s.series, target_ms: 100, met: l.p95 < 100 });
      console.error(`  /metrics ${name}: p50 ${round(l.p50)} ms, max ${round(l.max)} ms (${s.series} samples)`);
    }
    return { rows };
  } finally {
    await uncached.stop();
    await cached.stop();
    await plain.stop();
    await pool.end();
  }
}

function latency() {
  const runs = [];
  for (let i = 0; i < 4; i++) {
    const mode = i % 2 === 0 ? 'off' : 'on';
    const name = `telemetry-latency-${mode}-${i}`;
    const r = spawnSync(process.execPath, [path.join(ROOT, 'scripts/bench/signal-latency.mjs'), '1,100', 'long-poll'], {
      env: { ...process.env, OKIT_BENCH_TELEMETRY: mode, OKIT_BENCH_SURFACE: 'ui', OKIT_BENCH_RESULT: name },
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    if (r.status !== 0) throw new Error(`signal-latency (${mode}) failed`);
    const file = path.join(RESULTS, `${name}.json`);
    runs.push({ mode, rows: JSON.parse(fs.readFileSync(file, 'utf8')).rows });
    fs.rmSync(file);
  }
  const rows = [];
  for (const watchers of [1, 100]) {
    const samples = (mode) => runs.filter((r) => r.mode === mode).flatMap((r) => r.rows.find((x) => x.watchers === watchers).samples);
    const on = summary(samples('on'));
    const off = summary(samples('off'));
    rows.push({ mode: 'long-poll', watchers, deliveries_each: on.n, on_p50_ms: round(on.p50), off_p50_ms: round(off.p50), on_p99_ms: round(on.p99), off_p99_ms: round(off.p99), ratio_p50: round(on.p50 / off.p50), ratio_p99: round(on.p99 / off.p99) });
  }
  return { rows };
}

// OKIT_BENCH_PARTS=get,metrics,latency runs some parts; the others keep their last results.
const PARTS = (process.env.OKIT_BENCH_PARTS ?? 'get,metrics,latency').split(',');
const previous = fs.existsSync(path.join(RESULTS, 'telemetry.json')) ? JSON.parse(fs.readFileSync(path.join(RESULTS, 'telemetry.json'), 'utf8')) : {};
const pgsrv = await startPostgres();
let get = { rows: previous.get, rounds: previous.get_rounds, telemetry: previous.get_telemetry_writer };
let scrape = { rows: previous.metrics_scrape };
let lat = { rows: previous.long_poll_latency };
try {
  if (PARTS.includes('get')) {
    console.error('GET throughput, telemetry on vs off');
    get = await getThroughput(pgsrv.url);
  }
  if (PARTS.includes('metrics')) {
    console.error('/metrics with 100,000 jobs');
    scrape = await metricsScrape(pgsrv.url);
  }
} finally {
  await pgsrv.stop();
}
if (PARTS.includes('latency')) {
  console.error('long-poll delivery latency, telemetry on vs off');
  lat = latency();
}
for (const t of [get.rows, get.rounds, scrape.rows, lat.rows]) if (t?.length) table(t);
writeResult('telemetry', {
  seconds: SECONDS,
  connections: CONNS,
  rounds: ROUNDS,
  method:
    'same run, same database, two server processes (telemetry on; telemetry off = --no-telemetry), alternating rounds of the GET load generator of get-throughput.mjs; /metrics timed from the client, sequential scrapes after 3 warm-up ones; latency = signal-latency.mjs (long-poll) run four times alternating off/on, watchers declaring surface ui, samples pooled per setting',
  get: get.rows,
  get_rounds: get.rounds,
  get_telemetry_writer: get.telemetry,
  metrics_scrape: scrape.rows,
  long_poll_latency: lat.rows,
});
