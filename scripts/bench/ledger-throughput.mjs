// Ledger throughput against pg-boss and graphile-worker on the same Postgres in the same run.
//   process: jobs/s through enqueue → claim → progress → complete (okit: 3 transitions after the
//            enqueue) with 8 and 32 concurrent workers, okit with one tenant and spread over 8;
//            pg-boss fetch → complete, graphile-worker run (its own batched fetch and complete);
//   enqueue: single calls, 50 in flight (okit enqueue, pg-boss send, graphile addJob), and in
//            batches of 1,000 (okit enqueueMany, pg-boss insert, graphile addJobs);
//   latency: each okit call's time (claim, progress, complete) at 32 workers, p50 and p99.
// Usage: node scripts/bench/ledger-throughput.mjs [jobs=2000,20000] [workers=8,32]
//   LEDGER_SYSTEMS=okit (comma list of system names) runs only those, e.g. to profile okit alone
//   (scripts/bench/ledger-profile.mjs); batch enqueue then runs okit enqueueMany only.
import os from 'node:os';
import PgBoss from 'pg-boss';
import { run as gwRun, makeWorkerUtils, Logger } from 'graphile-worker';
import { createPool } from '../../dist/db/pool.js';
import { Ledger } from '../../dist/ledger/ledger.js';
import { createDatabase, round, startPostgres, summary, table, writeResult } from './lib.mjs';

const JOB_COUNTS = (process.argv[2] ?? '2000,20000').split(',').map(Number);
const CONCURRENCY = (process.argv[3] ?? '8,32').split(',').map(Number);
const TENANTS = 8;
const IN_FLIGHT = 50;
const BATCH = 1000;
const ONLY = process.env.LEDGER_SYSTEMS ? process.env.LEDGER_SYSTEMS.split(',') : undefined;
const wanted = (name) => !ONLY || ONLY.includes(name);

/** Enqueues n jobs through `one(i)` with IN_FLIGHT calls outstanding; seconds. */
async function enqueueSingles(n, one) {
  const t0 = performance.now();
  for (let i = 0; i < n; i += IN_FLIGHT) await Promise.all(Array.from({ length: Math.min(IN_FLIGHT, n - i) }, (_, k) => one(i + k)));
  return (performance.now() - t0) / 1000;
}

async function okit(url, jobs, workers, tenants) {
  const pool = createPool(url, { max: workers + 4 });
  const batches = [];
  const ledger = new Ledger(pool, { onBatch: (s) => !s.failed && batches.push(s.units) });
  const tenantOf = (i) => `bench${i % tenants}`;
  const enqueueS = await enqueueSingles(jobs, (i) => ledger.enqueue(tenantOf(i), { type: 'work', payload: { i } }));
  batches.length = 0;
  const lat = [];
  const timed = async (p) => {
    const t = performance.now();
    const r = await p;
    lat.push(performance.now() - t);
    return r;
  };
  let done = 0;
  const t1 = performance.now();
  await Promise.all(
    Array.from({ length: workers }, async (_, w) => {
      const tenant = tenantOf(w);
      for (;;) {
        const c = await timed(ledger.claim(tenant, { workerId: `w${w}`, types: ['work'], leaseSeconds: 60 }));
        if (!c) return;
        await timed(ledger.progress(tenant, c.job.id, `w${w}`, { phase: 'analyze', itemsDone: 1, itemsTotal: 2 }));
        await timed(ledger.complete(tenant, c.job.id, `w${w}`));
        done++;
      }
    }),
  );
  const workS = (performance.now() - t1) / 1000;
  await pool.end();
  if (done !== jobs) throw new Error(`okit processed ${done}/${jobs}`);
  const l = summary(lat);
  return { enqueueS, workS, p50: l.p50, p99: l.p99, avgBatch: batches.reduce((a, b) => a + b, 0) / Math.max(1, batches.length) };
}

async function bossStart(url, workers) {
  const boss = new PgBoss({ connectionString: url, max: workers + 4, supervise: false, schedule: false, migrate: true });
  boss.on('error', () => {});
  await boss.start();
  await boss.createQueue('work');
  return boss;
}

async function pgboss(url, jobs, workers) {
  const boss = await bossStart(url, workers);
  const enqueueS = await enqueueSingles(jobs, (i) => boss.send('work', { i }));
  let done = 0;
  const t1 = performance.now();
  await Promise.all(
    Array.from({ length: workers }, async () => {
      for (;;) {
        const got = await boss.fetch('work', { batchSize: 1 });
        if (!got || got.length === 0) return;
        await boss.complete('work', got[0].id);
        done++;
      }
    }),
  );
  const workS = (performance.now() - t1) / 1000;
  await boss.stop({ graceful: false, wait: false }).catch(() => {});
  if (done !== jobs) throw new Error(`pg-boss processed ${done}/${jobs}`);
  return { enqueueS, workS };
}

async function graphile(url, jobs, workers) {
  const utils = await makeWorkerUtils({ connectionString: url });
  await utils.migrate();
  const enqueueS = await enqueueSingles(jobs, (i) => utils.addJob('work', { i }));
  let done = 0;
  let resolveAll;
  const all = new Promise((r) => (resolveAll = r));
  const t1 = performance.now();
  const runner = await gwRun({
    connectionString: url,
    concurrency: workers,
    maxPoolSize: workers + 4,
    noHandleSignals: true,
    pollInterval: 1000,
    logger: new Logger(() => () => {}),
    taskList: {
      work: async () => {
        if (++done === jobs) resolveAll();
      },
    },
  });
  await all;
  const workS = (performance.now() - t1) / 1000;
  await runner.stop();
  await utils.release();
  return { enqueueS, workS };
}

/** Batch enqueue: `jobs` jobs in calls of BATCH, one call at a time; jobs/s. */
async function batchEnqueue(pgsrv, jobs) {
  const chunks = (make) => Array.from({ length: Math.ceil(jobs / BATCH) }, (_, c) => Array.from({ length: Math.min(BATCH, jobs - c * BATCH) }, (_, k) => make(c * BATCH + k)));
  const time = async (fn) => {
    const t0 = performance.now();
    await fn();
    return jobs / ((performance.now() - t0) / 1000);
  };
  const out = [];
  {
    const url = await createDatabase(pgsrv.url, 'bench_batch_okit', { migrated: true });
    const pool = createPool(url, { max: 4 });
    const ledger = new Ledger(pool);
    out.push({ system: 'okit enqueueMany', jobs, batch: BATCH, enqueue_per_s: await time(async () => { for (const c of chunks((i) => ({ type: 'work', payload: { i } }))) await ledger.enqueueMany('bench', c); }) });
    await pool.end();
  }
  if (ONLY) return out;
  {
    const url = await createDatabase(pgsrv.url, 'bench_batch_boss');
    const boss = await bossStart(url, 4);
    out.push({ system: 'pg-boss insert', jobs, batch: BATCH, enqueue_per_s: await time(async () => { for (const c of chunks((i) => ({ name: 'work', data: { i } }))) await boss.insert(c); }) });
    await boss.stop({ graceful: false, wait: false }).catch(() => {});
  }
  {
    const url = await createDatabase(pgsrv.url, 'bench_batch_gw');
    const utils = await makeWorkerUtils({ connectionString: url });
    await utils.migrate();
    out.push({ system: 'graphile-worker addJobs', jobs, batch: BATCH, enqueue_per_s: await time(async () => { for (const c of chunks((i) => ({ identifier: 'work', payload: { i } }))) await utils.addJobs(c); }) });
    await utils.release();
  }
  const okitRate = out[0].enqueue_per_s;
  for (const r of out) r.okit_ratio = okitRate / r.enqueue_per_s;
  return out;
}

const load0 = os.loadavg();
const pgsrv = await startPostgres();
const rows = [];
const latency = [];
let batchRows = [];
try {
  for (const jobs of JOB_COUNTS) {
    for (const workers of CONCURRENCY) {
      const systems = [
        ['okit', (u) => okit(u, jobs, workers, 1)],
        [`okit ${TENANTS} tenants`, (u) => okit(u, jobs, workers, TENANTS)],
        ['pg-boss', (u) => pgboss(u, jobs, workers)],
        ['graphile-worker', (u) => graphile(u, jobs, workers)],
      ].filter(([name]) => wanted(name));
      for (const [name, fn] of systems) {
        const url = await createDatabase(pgsrv.url, `bench_${name.replace(/[^a-z0-9]+/g, '_')}_${workers}`, { migrated: name.startsWith('okit') });
        const r = await fn(url);
        rows.push({ system: name, jobs, workers, enqueue_per_s: jobs / r.enqueueS, process_per_s: jobs / r.workS, avg_batch: r.avgBatch ? round(r.avgBatch, 1) : '' });
        if (r.p50 !== undefined) latency.push({ system: name, jobs, workers, transition_p50_ms: round(r.p50), transition_p99_ms: round(r.p99) });
        console.error(`  ${jobs} jobs, ${name} @${workers}: enqueue ${(jobs / r.enqueueS).toFixed(0)}/s, process ${(jobs / r.workS).toFixed(0)}/s`);
      }
    }
  }
  batchRows = await batchEnqueue(pgsrv, Math.max(...JOB_COUNTS));
} finally {
  await pgsrv.stop();
}
for (const r of rows) {
  const same = (s) => rows.find((x) => x.jobs === r.jobs && x.workers === r.workers && x.system === s);
  // okit's rate divided by this system's: > 1 means okit is faster.
  r.okit_1t_ratio = (same('okit')?.process_per_s ?? NaN) / r.process_per_s;
  r.okit_8t_ratio = (same(`okit ${TENANTS} tenants`)?.process_per_s ?? NaN) / r.process_per_s;
  r.enqueue_ratio = (same('okit')?.enqueue_per_s ?? NaN) / r.enqueue_per_s;
}
for (const t of [rows, batchRows, latency].filter((t) => t.length)) {
  table(t);
  console.log('');
}
const load1 = os.loadavg();
console.log(`load average (1 min) at start ${load0[0].toFixed(1)}, at end ${load1[0].toFixed(1)}`);
// A partial run (LEDGER_SYSTEMS) leaves the recorded results alone.
if (!ONLY) writeResult('ledger-throughput', {
  jobs: JOB_COUNTS,
  tenants: TENANTS,
  load_average: { start: round(load0[0], 1), end: round(load1[0], 1) },
  note: 'okit per job: enqueue + claim + progress + complete = 4 transitions, each with a hash-chained history row, a re-projected snapshot and a ledger position, concurrent ones of a tenant group-committed (one NOTIFY per batch); pg-boss: send + fetch + complete; graphile-worker: addJob + run (batched fetch and complete). Enqueue: 50 calls in flight.',
  rows,
  enqueue_batch: batchRows,
  latency,
});
