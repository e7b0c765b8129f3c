// Shared helpers for the benchmarks: a throwaway embedded Postgres, fresh databases,
// percentiles, a table printer and the results writer. Benchmarks run against dist/ (build first).
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { EmbeddedPostgres, tempHome } from '../../dist/db/embedded.js';
import { migrate } from '../../dist/db/migrate.js';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const RESULTS = path.join(ROOT, 'scripts/bench/results');

/** Starts Postgres (DATABASE_URL's server if set, else a temporary embedded one). */
export async function startPostgres() {
  if (process.env.DATABASE_URL) return { url: process.env.DATABASE_URL, stop: async () => {} };
  const home = tempHome('okit-bench-');
  const pgc = new EmbeddedPostgres(home);
  await pgc.start();
  // destroy() removes the cluster's directory; the home around it goes too.
  const destroy = () => pgc.destroy().finally(() => fs.rmSync(home, { recursive: true, force: true }));
  // Interrupted (Ctrl-C, timeout): stop the throwaway cluster rather than orphan it.
  const onSignal = (sig) => void destroy().finally(() => process.exit(sig === 'SIGINT' ? 130 : 143));
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  return {
    url: pgc.url(),
    stop: () => {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      return destroy();
    },
    cluster: pgc,
  };
}

export async function createDatabase(adminUrl, name, { migrated = false } = {}) {
  const c = new pg.Client({ connectionString: adminUrl });
  await c.connect();
  await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  await c.query(`CREATE DATABASE ${name}`);
  await c.end();
  const u = new URL(adminUrl);
  u.pathname = '/' + name;
  const url = u.toString();
  if (migrated) await migrate(url);
  return url;
}

export function percentile(sorted, p) {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i];
}

export function summary(values) {
  const s = [...values].sort((a, b) => a - b);
  return { n: s.length, p50: percentile(s, 50), p95: percentile(s, 95), p99: percentile(s, 99), max: s[s.length - 1] };
}

export function table(rows) {
  const cols = Object.keys(rows[0]);
  const fmt = (v) => (typeof v === 'number' ? (Number.isInteger(v) ? String(v) : v.toFixed(2)) : String(v));
  const w = cols.map((c) => Math.max(c.length, ...rows.map((r) => fmt(r[c]).length)));
  const line = (vals) => vals.map((v, i) => v.padStart(w[i])).join('  ');
  console.log(line(cols));
  for (const r of rows) console.log(line(cols.map((c) => fmt(r[c]))));
}

export function machine() {
  return { cpus: os.cpus().length, cpu_model: os.cpus()[0]?.model ?? 'unknown', mem_gib: Math.round(os.totalmem() / 2 ** 30), node: process.version, platform: `${process.platform}-${process.arch}` };
}

export function writeResult(name, data) {
  fs.mkdirSync(RESULTS, { recursive: true });
  const file = path.join(RESULTS, `${name}.json`);
  fs.writeFileSync(file, JSON.stringify({ benchmark: name, machine: machine(), ...data }, null, 2) + '\n');
  console.log(`\nwrote ${path.relative(ROOT, file)}`);
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ------------------------------------------------------------------ HTTP benchmarks

/**
 * Starts the server under test in its own process (scripts/bench/serve-child.mjs runs the
 * same startServer() as `okit serve`) so its CPU and memory are not the load generator's.
 */
export async function spawnServer(url, { execArgv = [], env = {} } = {}) {
  const { fork } = await import('node:child_process');
  const child = fork(path.join(ROOT, 'scripts/bench/serve-child.mjs'), [], {
    env: { ...process.env, DATABASE_URL: url, ...env },
    execArgv,
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const pending = new Map();
  let nextId = 1;
  const ready = new Promise((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`server exited with ${code}`)));
    child.on('message', (m) => {
      if (m.ready) resolve(m.baseUrl);
      else if (pending.has(m.id)) {
        pending.get(m.id)(m);
        pending.delete(m.id);
      }
    });
  });
  const ask = (cmd, extra = {}) =>
    new Promise((resolve) => {
      const id = nextId++;
      pending.set(id, resolve);
      child.send({ cmd, id, ...extra });
    });
  const baseUrl = await ready;
  const u = new URL(baseUrl);
  return {
    baseUrl,
    host: u.hostname,
    port: Number(u.port),
    pid: child.pid,
    stats: (extra) => ask('stats', extra),
    gc: () => ask('gc'),
    stop: async () => {
      const exited = new Promise((r) => child.once('exit', r));
      await Promise.race([ask('stop'), sleep(10_000)]);
      await Promise.race([exited, sleep(2000)]);
      if (child.exitCode === null) child.kill('SIGKILL');
    },
  };
}

/** Waits until `cond()` (async) holds, polling; throws after `ms`. */
export async function until(cond, ms = 60_000, what = 'condition') {
  const t0 = performance.now();
  for (;;) {
    if (await cond()) return;
    if (performance.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

/**
 * Stamps the moment a ledger transaction's COMMIT is handed to the socket. The batch writer
 * sends its write (with the NOTIFY) and COMMIT as one message ending in `COMMIT`; wrapping
 * pg.Client#query in this process records performance.now() just before that message is issued.
 * So t0 comes before the batch's rows are written: the write's own time (about a millisecond for
 * one transition) is in every latency, okit's and the bare LISTEN baseline's alike.
 */
export function stampCommits() {
  const stamp = { at: NaN, count: 0 };
  const orig = pg.Client.prototype.query;
  pg.Client.prototype.query = function (config, ...rest) {
    if (typeof config === 'string' && config.endsWith('COMMIT')) {
      stamp.at = performance.now();
      stamp.count++;
    }
    return orig.call(this, config, ...rest);
  };
  return stamp;
}

/** Reads a process's current and peak resident set size (bytes) from /proc. */
export function procRss(pid) {
  try {
    const s = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (k) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(s)?.[1] ?? NaN) * 1024;
    return { rss: kb('VmRSS'), peak: kb('VmHWM') };
  } catch {
    return { rss: NaN, peak: NaN };
  }
}

export const round = (x, d = 2) => (Number.isFinite(x) ? Math.round(x * 10 ** d) / 10 ** d : x);

/**
 * Drives C keep-alive connections for `seconds`, each sending `request` again as soon as the
 * previous response is complete (raw sockets, a minimal response parser); returns requests/s,
 * latency percentiles and status counts.
 */
export async function httpLoad(port, request, seconds, conns) {
  const lat = [];
  const statuses = {};
  let done = 0;
  let stop = false;
  let measuring = false;
  const one = () =>
    new Promise((resolve, reject) => {
      const s = net.connect(port, '127.0.0.1');
      s.setNoDelay(true);
      let buf = Buffer.alloc(0);
      let t0 = 0;
      const send = () => {
        t0 = performance.now();
        s.write(request);
      };
      s.on('connect', send);
      s.on('error', reject);
      s.on('data', (chunk) => {
        buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
        for (;;) {
          const end = buf.indexOf('\r\n\r\n');
          if (end < 0) return;
          const head = buf.subarray(0, end).toString('latin1');
          const status = head.slice(9, 12);
          const m = /\r\ncontent-length: *(\d+)/i.exec(head);
          const len = m ? Number(m[1]) : 0;
          if (buf.length < end + 4 + len) return;
          buf = buf.subarray(end + 4 + len);
          if (measuring) {
            lat.push(performance.now() - t0);
            statuses[status] = (statuses[status] ?? 0) + 1;
            done++;
          }
          if (stop) {
            s.destroy();
            return resolve();
          }
          send();
        }
      });
    });
  const runs = Array.from({ length: conns }, one);
  await sleep(500); // warm-up
  measuring = true;
  const t0 = performance.now();
  await sleep(seconds * 1000);
  measuring = false;
  const elapsed = (performance.now() - t0) / 1000;
  stop = true;
  await Promise.all(runs);
  const l = summary(lat);
  return { req_per_s: Math.round(done / elapsed), p50_ms: round(l.p50), p99_ms: round(l.p99), statuses };
}

/** The GET benchmarks' job: claimed and part-way through a phase, so its signal has an ETA and a summary. */
export async function getBenchJob(ledger) {
  const { job } = await ledger.enqueue('bench', { type: 'get' });
  await ledger.claim('bench', { workerId: 'w', types: ['get'], leaseSeconds: 3600 });
  await ledger.progress('bench', job.id, 'w', { phase: 'analyze', summary: 'reading the inventory', itemsDone: 3, itemsTotal: 10 });
  return job;
}
