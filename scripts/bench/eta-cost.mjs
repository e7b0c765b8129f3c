// The cost of issue 14's ETA inputs on the ledger's hot path, same process, same database:
//   trigger: claim → complete throughput with the per-success trigger (migration 012) on and
//            off (ALTER TABLE … DISABLE TRIGGER), in alternating rounds, so machine load hits both;
//   eta read: the per-batch statement claim/enqueue/retry add (durations + running workers of
//            the batch's types), timed alone, against the claim batch it rides in.
// Usage: node scripts/bench/eta-cost.mjs [jobs per round=1000] [rounds=6] [workers=8]
import os from 'node:os';
import { createPool } from '../../dist/db/pool.js';
import { Ledger } from '../../dist/ledger/ledger.js';
import { createDatabase, percentile, round, startPostgres, table, writeResult } from './lib.mjs';

const JOBS = Number(process.argv[2] ?? 1000);
const ROUNDS = Number(process.argv[3] ?? 6);
const WORKERS = Number(process.argv[4] ?? 8);
const T = 'cost';
const load0 = os.loadavg()[0];
const pgsrv = await startPostgres();
let out;
try {
  const url = await createDatabase(pgsrv.url, 'bench_eta_cost', { migrated: true });
  const pool = createPool(url, { max: WORKERS + 4 });
  const ledger = new Ledger(pool);
  const claimBatches = [];
  const rounds = [];
  for (let r = 0; r < ROUNDS; r++) {
    const on = r % 2 === 0;
    await pool.query(`ALTER TABLE okit.job_history ${on ? 'ENABLE' : 'DISABLE'} TRIGGER job_history_type_durations`);
    await ledger.enqueueMany(T, Array.from({ length: JOBS }, (_, i) => ({ type: `work${i % 4}`, payload: { i } })));
    const t0 = performance.now();
    let done = 0;
    await Promise.all(
      Array.from({ length: WORKERS }, async (_, w) => {
        for (;;) {
          const c = await ledger.claim(T, { workerId: `w${w}`, types: ['work0', 'work1', 'work2', 'work3'] });
          if (!c) return;
          await ledger.complete(T, c.job.id, `w${w}`);
          done++;
        }
      }),
    );
    const s = (performance.now() - t0) / 1000;
    rounds.push({ round: r + 1, trigger: on ? 'on' : 'off', jobs: done, jobs_per_s: round(done / s, 1) });
  }
  await pool.query('ALTER TABLE okit.job_history ENABLE TRIGGER job_history_type_durations');
  const { rows: d } = await pool.query('SELECT count(*)::int AS n FROM okit.type_durations WHERE tenant = $1', [T]);
  // The per-batch ETA read, alone (the statement batch.ts sends), 200 times.
  const ms = [];
  for (let i = 0; i < 200; i++) {
    const t0 = performance.now();
    await pool.query(
      `SELECT x.type, d.durations_us::text[] AS d,
         (SELECT count(DISTINCT lease_owner)::int FROM okit.jobs WHERE tenant = $1 AND type = x.type AND state = 'running') AS w
       FROM unnest($2::text[]) AS x(type) LEFT JOIN okit.type_durations d ON d.tenant = $1 AND d.type = x.type`,
      [T, ['work0', 'work1', 'work2', 'work3']],
    );
    ms.push(performance.now() - t0);
  }
  ms.sort((a, b) => a - b);
  await pool.end();
  const med = (xs) => {
    const v = xs.slice().sort((a, b) => a - b);
    return v.length % 2 ? v[(v.length - 1) / 2] : (v[v.length / 2 - 1] + v[v.length / 2]) / 2;
  };
  const onR = rounds.filter((x) => x.trigger === 'on').map((x) => x.jobs_per_s);
  const offR = rounds.filter((x) => x.trigger === 'off').map((x) => x.jobs_per_s);
  table(rounds);
  const summary = {
    trigger_on_median_jobs_per_s: round(med(onR), 1),
    trigger_off_median_jobs_per_s: round(med(offR), 1),
    ratio_on_over_off: round(med(onR) / med(offR), 3),
    eta_read_p50_ms: round(percentile(ms, 50), 3),
    eta_read_p90_ms: round(percentile(ms, 90), 3),
    type_durations_rows: d[0].n,
  };
  table([summary]);
  const load1 = os.loadavg()[0];
  console.log(`load average (1 min) at start ${load0.toFixed(1)}, at end ${load1.toFixed(1)}`);
  out = { jobs_per_round: JOBS, workers: WORKERS, rounds, ...summary, load_start: round(load0, 1), load_end: round(load1, 1) };
} finally {
  await pgsrv.stop();
}
writeResult('eta-cost', out);
