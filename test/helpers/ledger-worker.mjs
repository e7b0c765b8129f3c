// A child process for test/ledger/concurrency.test.ts: `callers` concurrent callers on one
// Ledger (one pool), each making `jobs[i]` jobs go enqueued → claimed → progress → succeeded
// on tenant tenants[i % tenants.length]. Starts when it reads a line on stdin (so that both
// processes start together); prints one JSON line: the jobs it enqueued and its batch stats.
// Runs against dist/ (npm test builds first).
import readline from 'node:readline';
import { createPool } from '../../dist/db/pool.js';
import { Ledger } from '../../dist/ledger/ledger.js';

const cfg = JSON.parse(process.env.OKIT_WORKER_CONFIG);
const pool = createPool(process.env.DATABASE_URL, { max: 8, applicationName: `okit-test-proc${cfg.proc}` });
const batches = [];
const ledger = new Ledger(pool, { onBatch: (s) => batches.push({ units: s.units, positions: s.positions, failed: s.failed }) });
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

await new Promise((r) => readline.createInterface({ input: process.stdin }).once('line', r));
const enqueued = [];
await Promise.all(
  cfg.jobs.map(async (n, i) => {
    const tenant = cfg.tenants[i % cfg.tenants.length];
    const worker = `p${cfg.proc}-c${i}`;
    for (let k = 0; k < n; k++) {
      const { job } = await ledger.enqueue(tenant, { type: 'cc', payload: { proc: cfg.proc, caller: i, k } });
      enqueued.push({ tenant, id: job.id });
      let c = null;
      for (let tries = 0; !c; tries++) {
        c = await ledger.claim(tenant, { workerId: worker, types: ['cc'], leaseSeconds: 600 });
        if (!c) await sleep(2 + (tries % 10));
      }
      const holder = { workerId: worker, leaseToken: c.leaseToken };
      await ledger.progress(tenant, c.job.id, holder, { phase: 'analyze', itemsDone: 1, itemsTotal: 2 });
      await ledger.complete(tenant, c.job.id, holder, { by: worker });
    }
  }),
);
await pool.end();
process.stdout.write(JSON.stringify({ enqueued, batches }) + '\n');
