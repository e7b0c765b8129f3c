// Soak: `okit serve` (scripts/bench/serve-child.mjs, its own process) under a steady mixed load
// for 30 minutes: jobs enqueued at a fixed rate and worked through (claim, progress, complete)
// by HTTP workers, long-poll watchers, SSE followers, plain first-signal GETs, and a trickle of
// hostile connections (garbage, slow headers, `//` paths). Every 10 s it samples the server's
// RSS and heap, its open file descriptors (/proc/<pid>/fd), its pool's connections and the
// database's (pg_stat_activity), its event-loop lag (monitorEventLoopDelay), and what each kind
// of request got back. Flat is the target. Not part of npm test (or npm run bench: too long).
//
//   node scripts/bench/soak.mjs [--minutes 30] [--sample-s 10]
//
// Writes scripts/bench/results/soak.json; `node scripts/bench/plot-soak.mjs` draws scripts/bench/results/soak.svg.
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import pg from 'pg';
import { createPool } from '../../dist/db/pool.js';
import { createToken } from '../../dist/http/tokens.js';
import { OkitClient } from '../../dist/worker/client.js';
import { createDatabase, round, sleep, spawnServer, startPostgres, procRss, writeResult } from './lib.mjs';

const arg = (name, def) => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? Number(process.argv[i + 1]) : def;
};
const MINUTES = arg('--minutes', 30);
const SAMPLE_S = arg('--sample-s', 10);
const LOAD = {
  enqueue_per_s: 6,
  workers: 4,
  progress_per_job: 3,
  longpoll_watchers: 100,
  sse_followers: 10,
  get_loops: 10,
  get_pause_ms: 50,
  hostile_per_sample: { garbage: 20, slow_headers: 5, double_slash: 5 },
};
const A = '/api/v1/orchestrator';

const pgc = await startPostgres();
const url = await createDatabase(pgc.url, 'okit_soak', { migrated: true });
const setup = createPool(url, { max: 2 });
const worker = (await createToken(setup, { tenant: 'soak', scope: 'worker' })).token;
const read = (await createToken(setup, { tenant: 'soak', scope: 'read' })).token;
const srv = await spawnServer(url);
const { host, port } = srv;
console.log(`soak: ${MINUTES} min against ${srv.baseUrl} (server pid ${srv.pid}), sampling every ${SAMPLE_S} s`);

const agent = new http.Agent({ keepAlive: true, maxSockets: 400 });
const counts = {};
const count = (kind, status) => {
  const k = `${kind}:${status}`;
  counts[k] = (counts[k] ?? 0) + 1;
};
function request(method, path, { headers = {}, body, timeoutMs = 40_000 } = {}) {
  return new Promise((resolve) => {
    const req = http.request({ host, port, method, path, agent, headers: { ...headers, ...(body ? { 'Content-Type': 'application/json' } : {}) }, timeout: timeoutMs }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, text }));
      res.on('error', (e) => resolve({ status: e.code ?? 'error', headers: {}, text: '' }));
    });
    req.on('timeout', () => req.destroy(Object.assign(new Error('timeout'), { code: 'CLIENT_TIMEOUT' })));
    // No answer at all: counted by the client-side error code (ECONNRESET, CLIENT_TIMEOUT, ...).
    req.on('error', (e) => resolve({ status: e.code ?? 'error', headers: {}, text: '' }));
    req.end(body ? JSON.stringify(body) : undefined);
  });
}

/** A status to count: 5xx answers with their error code (which bound gave way). */
const statusOf = (r) => {
  if (typeof r.status !== 'number' || r.status < 500) return r.status;
  try {
    return `${r.status}:${JSON.parse(r.text).error.code}`;
  } catch {
    return r.status;
  }
};

let running = true;
const recent = []; // job ids, newest last
const pick = () => recent[Math.floor(Math.random() * recent.length)];
const client = new OkitClient({ url: srv.baseUrl, token: worker, timeoutMs: 10_000 });
const TERMINAL = new Set(['succeeded', 'failed', 'canceled']);

// Producer: a fixed rate, whatever the server does.
const producer = (async () => {
  let i = 0;
  const t0 = performance.now();
  while (running) {
    const due = t0 + (i * 1000) / LOAD.enqueue_per_s;
    if (due > performance.now()) await sleep(due - performance.now());
    i++;
    try {
      const { job } = await client.enqueue({ type: 'soak', payload: { n: i } });
      count('enqueue', 201);
      recent.push(job.id);
      if (recent.length > 200) recent.shift();
    } catch (e) {
      count('enqueue', e.code ?? 'error');
    }
  }
})();

const workers = Array.from({ length: LOAD.workers }, async (_, k) => {
  const me = `soak-w${k}`;
  while (running) {
    try {
      const c = await client.claim({ workerId: me, types: ['soak'], leaseSeconds: 30 });
      count('claim', 200);
      if (!c) {
        await sleep(100);
        continue;
      }
      for (let p = 1; p <= LOAD.progress_per_job; p++) {
        await client.progress(c.job.id, { workerId: me, leaseToken: c.leaseToken, phase: 'analyze', summary: 'Scanning image layers', itemsDone: p, itemsTotal: LOAD.progress_per_job });
        count('progress', 200);
        await sleep(100);
      }
      await client.complete(c.job.id, { workerId: me, leaseToken: c.leaseToken, result: { ok: true } });
      count('complete', 200);
    } catch (e) {
      count('worker', e.code ?? 'error');
      await sleep(200);
    }
  }
});

// Long-poll watchers follow one of the newest jobs (the ones still changing) to its end.
const watchers = Array.from({ length: LOAD.longpoll_watchers }, async () => {
  while (running && recent.length === 0) await sleep(100);
  while (running) {
    const id = recent[Math.max(0, recent.length - 1 - Math.floor(Math.random() * 20))];
    let etag = null;
    for (let polls = 0; running && polls < 15; polls++) {
      const r = await request('GET', `${A}/jobs/${id}/first-signal?wait=2`, { headers: { Authorization: `Bearer ${read}`, ...(etag ? { 'If-None-Match': etag } : {}) } });
      count('longpoll', statusOf(r));
      if (r.status === 200) {
        etag = r.headers.etag;
        if (TERMINAL.has(JSON.parse(r.text).kind)) {
          await sleep(500);
          break;
        }
      } else if (r.status !== 304) await sleep(500);
    }
  }
});

const readers = Array.from({ length: LOAD.get_loops }, async () => {
  while (running && recent.length === 0) await sleep(100);
  while (running) {
    const r = await request('GET', `${A}/jobs/${pick()}/first-signal`, { headers: { Authorization: `Bearer ${read}` } });
    count('get', statusOf(r));
    await sleep(LOAD.get_pause_ms);
  }
});

// SSE followers: one job to its `done` event, then the next.
const sse = Array.from({ length: LOAD.sse_followers }, async () => {
  while (running && recent.length === 0) await sleep(100);
  while (running) {
    const status = await new Promise((resolve) => {
      const req = http.request({ host, port, path: `${A}/stream/jobs/${recent[recent.length - 1]}/first-signal`, headers: { Authorization: `Bearer ${read}`, Accept: 'text/event-stream' } }, (res) => {
        let buf = '';
        res.setEncoding('utf8');
        res.on('data', (d) => {
          buf += d;
          if (buf.includes('event: done')) res.destroy();
        });
        res.on('close', () => resolve(res.statusCode));
        res.on('error', () => resolve(res.statusCode));
      });
      req.setTimeout(120_000, () => req.destroy());
      req.on('error', () => resolve(0));
      req.end();
    });
    count('sse', status);
    if (status !== 200) await sleep(500);
  }
});

// Hostile connections, a handful per sample period.
function rawOnce(bytes, waitMs = 15_000) {
  return new Promise((resolve) => {
    const s = net.connect(port, host);
    let data = '';
    const t = setTimeout(() => s.destroy(), waitMs);
    s.on('connect', () => s.write(bytes));
    s.on('data', (d) => (data += d));
    s.on('close', () => {
      clearTimeout(t);
      resolve(Number(/^HTTP\/1\.1 (\d{3})/.exec(data)?.[1] ?? 0));
    });
    s.on('error', () => undefined);
  });
}
const hostile = (async () => {
  while (running) {
    const h = LOAD.hostile_per_sample;
    const all = [
      ...Array.from({ length: h.garbage }, () => rawOnce('GARBAGE\r\n\r\n').then((s) => count('garbage', s))),
      ...Array.from({ length: h.slow_headers }, () => rawOnce('GET /healthz HTTP/1.1\r\nHost: x\r\n').then((s) => count('slow_headers', s))),
      ...Array.from({ length: h.double_slash }, () => rawOnce(`GET //x/healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`).then((s) => count('double_slash', s))),
    ];
    await Promise.race([Promise.all(all), sleep(SAMPLE_S * 1000)]);
    await sleep(SAMPLE_S * 1000);
  }
})();

// Sampling.
const admin = new pg.Client({ connectionString: pgc.url });
admin.on('error', (e) => console.error('soak: admin connection:', e.message));
await admin.connect();
const samples = [];
const t0 = performance.now();
let last = { ...counts };
await srv.stats({ resetLag: true });
while (performance.now() - t0 < MINUTES * 60_000) {
  await sleep(SAMPLE_S * 1000 - ((performance.now() - t0) % (SAMPLE_S * 1000)));
  const st = await srv.stats({ resetLag: true });
  const fds = fs.readdirSync(`/proc/${srv.pid}/fd`).length;
  const { rows } = await admin.query("SELECT coalesce(application_name, '') AS app, count(*)::int AS n FROM pg_stat_activity WHERE datname = 'okit_soak' GROUP BY 1");
  const pgConns = Object.fromEntries(rows.map((r) => [r.app, r.n]));
  const delta = {};
  for (const [k, v] of Object.entries(counts)) if (v - (last[k] ?? 0) > 0) delta[k] = v - (last[k] ?? 0);
  last = { ...counts };
  const s = {
    t_s: Math.round((performance.now() - t0) / 1000),
    rss_mib: round(procRss(srv.pid).rss / 2 ** 20, 1),
    heap_mib: round(st.heapUsed / 2 ** 20, 1),
    fds,
    http_connections: st.connections,
    pool_total: st.pool.total,
    pool_idle: st.pool.idle,
    pool_waiting: st.pool.waiting,
    load_1m: round(os.loadavg()[0], 2),
    pg_connections: Object.values(pgConns).reduce((a, b) => a + b, 0),
    pg_by_app: pgConns,
    waiters: st.waiters,
    loop_p50_ms: st.loop.p50_ms,
    loop_p99_ms: st.loop.p99_ms,
    loop_max_ms: st.loop.max_ms,
    ready: st.serving,
    requests: delta,
  };
  samples.push(s);
  console.log(
    `${String(s.t_s).padStart(5)} s  rss ${s.rss_mib} MiB  heap ${s.heap_mib} MiB  fds ${s.fds}  http ${s.http_connections}  pool ${s.pool_total}/${s.pool_idle} idle/${s.pool_waiting} waiting  pg ${s.pg_connections}  loop p99 ${s.loop_p99_ms} ms  ${Object.entries(delta)
      .map(([k, v]) => `${k}=${v}`)
      .join(' ')}`,
  );
}

running = false;
await Promise.race([Promise.all([producer, ...workers, ...watchers, ...readers, ...sse, hostile]), sleep(45_000)]);
await admin.end();
const stateCounts = (await setup.query('SELECT state, count(*)::int AS n FROM okit.jobs GROUP BY state ORDER BY state')).rows;
const historyRows = (await setup.query('SELECT count(*)::int AS n FROM okit.job_history')).rows[0].n;
await setup.end();
await srv.stop();
agent.destroy();
await pgc.stop();

// Summary: the first and the last five minutes (after a minute of warm-up), side by side.
const window = (from, to) => samples.filter((s) => s.t_s > from && s.t_s <= to);
const med = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.floor(s.length / 2)] : NaN;
};
const endS = samples.at(-1)?.t_s ?? 0;
const early = window(60, Math.min(endS, 360));
const late = window(Math.max(60, endS - 300), endS);
const statuses = {};
for (const [k, v] of Object.entries(counts)) statuses[k] = v;
const fiveXX = Object.entries(counts)
  .filter(([k]) => /:5\d\d(:|$)/.test(k))
  .reduce((a, [, v]) => a + v, 0);
const summary = {
  minutes: MINUTES,
  rss_mib_early_median: med(early.map((s) => s.rss_mib)),
  rss_mib_late_median: med(late.map((s) => s.rss_mib)),
  rss_mib_max: Math.max(...samples.map((s) => s.rss_mib)),
  first_sample: { t_s: samples[0]?.t_s, rss_mib: samples[0]?.rss_mib, fds: samples[0]?.fds, pool_total: samples[0]?.pool_total, pg_connections: samples[0]?.pg_connections },
  last_sample: { t_s: samples.at(-1)?.t_s, rss_mib: samples.at(-1)?.rss_mib, fds: samples.at(-1)?.fds, pool_total: samples.at(-1)?.pool_total, pg_connections: samples.at(-1)?.pg_connections },
  load_1m_min: Math.min(...samples.map((s) => s.load_1m)),
  load_1m_median: med(samples.map((s) => s.load_1m)),
  load_1m_max: Math.max(...samples.map((s) => s.load_1m)),
  heap_mib_early_median: med(early.map((s) => s.heap_mib)),
  heap_mib_late_median: med(late.map((s) => s.heap_mib)),
  fds_min: Math.min(...samples.map((s) => s.fds)),
  fds_max: Math.max(...samples.map((s) => s.fds)),
  fds_early_median: med(early.map((s) => s.fds)),
  fds_late_median: med(late.map((s) => s.fds)),
  pool_max: Math.max(...samples.map((s) => s.pool_total)),
  pool_waiting_max: Math.max(...samples.map((s) => s.pool_waiting)),
  pg_connections_max: Math.max(...samples.map((s) => s.pg_connections)),
  loop_p50_ms_median: med(samples.map((s) => s.loop_p50_ms)),
  loop_p99_ms_median: med(samples.map((s) => s.loop_p99_ms)),
  loop_p99_ms_max: Math.max(...samples.map((s) => s.loop_p99_ms)),
  loop_max_ms_max: Math.max(...samples.map((s) => s.loop_max_ms)),
  not_ready_samples: samples.filter((s) => !s.ready).length,
  responses_5xx: fiveXX,
  jobs_by_state: Object.fromEntries(stateCounts.map((r) => [r.state, r.n])),
  history_rows: historyRows,
};
console.log(summary);
writeResult('soak', { command: `node scripts/bench/soak.mjs --minutes ${MINUTES} --sample-s ${SAMPLE_S}`, date: new Date().toISOString().slice(0, 10), load: LOAD, summary, statuses, samples });
