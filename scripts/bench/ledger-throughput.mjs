// Ledger throughput: jobs/s through enqueue → claim → progress → complete with 8 and 32
// concurrent workers, against pg-boss and graphile-worker doing enqueue → work → complete on the
// same Postgres in the same run; okit both with one tenant (its transitions serialise on the
// tenant's ledger head) and with the work spread over 8 tenants. Usage: node scripts/bench/ledger-throughput.mjs [jobs=2000]
import PgBoss from 'pg-boss';
import { run as gwRun, makeWorkerUtils } from 'graphile-worker';
import { createPool } from '../../dist/db/pool.js';
import { Ledger } from '../../dist/ledger/ledger.js';
import { createDatabase, startPostgres, table, writeResult } from './lib.mjs';

const JOBS = Number(process.argv[2] ?? 2000);
const CONCURRENCY = [8, 32];
const TENANTS = 8;

/**
 * okit with `tenants` tenants: jobs and workers are spread evenly over them. Within one tenant,
 * transitions commit one at a time (the ledger head row lock is held to commit so positions are
 * dense and in commit order); separate tenants commit in parallel.
 */
async function okit(url, workers, tenants = 1) {
  const pool = createPool(url, { max: workers + 4 });
  const ledger = new Ledger(pool);
  const tenantOf = (i) => `bench${i % tenants}`;
  const t0 = performance.now();
  for (let i = 0; i < JOBS; i += 50) {
    await Promise.all(Array.from({ length: Math.min(50, JOBS - i) }, (_, k) => ledger.enqueue(tenantOf(i + k), { type: 'work', payload: { i: i + k } })));
  }
  const enqueueS = (performance.now() - t0) / 1000;
  let done = 0;
  const t1 = performance.now();
  await Promise.all(
    Array.from({ length: workers }, async (_, w) => {
      const tenant = tenantOf(w);
      for (;;) {
        const c = await ledger.claim(tenant, { workerId: `w${w}`, types: ['work'], leaseSeconds: 60 });
        if (!c) return;
        await ledger.progress(tenant, c.job.id, `w${w}`, { phase: 'analyze', itemsDone: 1, itemsTotal: 2 });
        await ledger.complete(tenant, c.job.id, `w${w}`);
        done++;
      }
    }),
  );
  const workS = (performance.now() - t1) / 1000;
  await pool.end();
  if (done !== JOBS) throw new Error(`okit processed ${done}/${JOBS}`);
  return { enqueueS, workS };
}

async function pgboss(url, workers) {
  const boss = new PgBoss({ connectionString: url, max: workers + 4, supervise: false, schedule: false, migrate: true });
  boss.on('error', () => {});
  await boss.start();
  await boss.createQueue('work');
  const t0 = performance.now();
  for (let i = 0; i < JOBS; i += 50) {
    await Promise.all(Array.from({ length: Math.min(50, JOBS - i) }, (_, k) => boss.send('work', { i: i + k })));
  }
  const enqueueS = (performance.now() - t0) / 1000;
  let done = 0;
  const t1 = performance.now();
  await Promise.all(
    Array.from({ length: workers }, async () => {
      for (;;) {
        const jobs = await boss.fetch('work', { batchSize: 1 });
        if (!jobs || jobs.length === 0) return;
        await boss.complete('work', jobs[0].id);
        done++;
      }
    }),
  );
  const workS = (performance.now() - t1) / 1000;
  await boss.stop({ graceful: false, wait: false }).catch(() => {});
  if (done !== JOBS) throw new Error(`pg-boss processed ${done}/${JOBS}`);
  return { enqueueS, workS };
}

async function graphile(url, workers) {
  const utils = await makeWorkerUtils({ connectionString: url });
  await utils.migrate();
  const t0 = performance.now();
  for (let i = 0; i < JOBS; i += 50) {
    await Promise.all(Array.from({ length: Math.min(50, JOBS - i) }, (_, k) => utils.addJob('work', { i: i + k })));
  }
  const enqueueS = (performance.now() - t0) / 1000;
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
    logger: new (await import('graphile-worker')).Logger(() => () => {}),
    taskList: {
      work: async () => {
        if (++done === JOBS) resolveAll();
      },
    },
  });
  await all;
  const workS = (performance.now() - t1) / 1000;
  await runner.stop();
  await utils.release();
  return { enqueueS, workS };
}

const pgsrv = await startPostgres();
const rows = [];
try {
  for (const workers of CONCURRENCY) {
    const systems = [
      ['okit', (u, w) => okit(u, w, 1)],
      [`okit ${TENANTS} tenants`, (u, w) => okit(u, w, TENANTS)],
      ['pg-boss', pgboss],
      ['graphile-worker', graphile],
    ];
    for (const [name, fn] of systems) {
      const url = await createDatabase(pgsrv.url, `bench_${name.replace(/[^a-z0-9]+/g, '_')}_${workers}`, { migrated: name.startsWith('okit') });
      const r = await fn(url, workers);
      rows.push({ system: name, workers, jobs: JOBS, enqueue_per_s: JOBS / r.enqueueS, process_per_s: JOBS / r.workS });
      console.error(`  ${name} @${workers}: enqueue ${(JOBS / r.enqueueS).toFixed(0)}/s, process ${(JOBS / r.workS).toFixed(0)}/s`);
    }
  }
} finally {
  await pgsrv.stop();
}
for (const r of rows) {
  const one = rows.find((x) => x.workers === r.workers && x.system === 'okit');
  const many = rows.find((x) => x.workers === r.workers && x.system === `okit ${TENANTS} tenants`);
  // okit's jobs/s divided by this system's: > 1 means okit is faster.
  r.okit_1t_ratio = one.process_per_s / r.process_per_s;
  r.okit_8t_ratio = many.process_per_s / r.process_per_s;
}
table(rows);
console.log(
  '\nper job okit also writes what the others do not: 1 history row per transition (hash-chained,' +
    ' here: enqueued, claimed, progress, succeeded = 4 rows), a re-projected first-signal snapshot' +
    ' per transition, a ledger-position bump, and one NOTIFY per transition.',
);
writeResult('ledger-throughput', {
  jobs: JOBS,
  tenants: TENANTS,
  note: 'okit per job: enqueue + claim + progress + complete = 4 transactions, each with a history row, a snapshot upsert and a NOTIFY; pg-boss: send + fetch + complete; graphile-worker: addJob + run (batched fetch, complete).',
  rows,
});
