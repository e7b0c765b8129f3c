// Where a ledger batch transaction's time goes, from the writer's own observer (LedgerOptions.onBatch):
// messages sent (round trips, BEGIN and COMMIT included), the whole transaction, and how long the
// tenant's ledger head is locked (from the message that takes the positions to the end of
// COMMIT): the window in which no other batch of the tenant can commit. Two loads:
//   lone:  one caller, one transition at a time (each a batch of one; what an idle tenant sees);
//   busy:  32 callers on one tenant (claim → progress → complete), batched.
// `max_tenant_tx_per_s` is transitions per second of head lock: units / locked time. The floor
// is `bare_commit_ms`, a bare single-row INSERT and COMMIT (one WAL flush) on the same server.
// Usage: node scripts/bench/ledger-breakdown.mjs [jobs=200]
import pg from 'pg';
import { createPool } from '../../dist/db/pool.js';
import { Ledger } from '../../dist/ledger/ledger.js';
import { createDatabase, round, startPostgres, summary, table, writeResult } from './lib.mjs';

const JOBS = Number(process.argv[2] ?? 200);

const pgsrv = await startPostgres();
const rowsOut = [];
try {
  const url = await createDatabase(pgsrv.url, 'bench_breakdown', { migrated: true });
  const pool = createPool(url, { max: 40 });
  let current = null;
  const ledger = new Ledger(pool, { onBatch: (s) => current && !s.failed && current.push(s) });
  const perOp = {};
  const measure = async (op, fn) => {
    current = [];
    const t0 = performance.now();
    const r = await fn();
    const total = performance.now() - t0;
    const o = (perOp[op] ??= { total: [], batches: [] });
    o.total.push(total);
    o.batches.push(...current);
    current = null;
    return r;
  };
  // Lone: every call alone (the first batch of the tenant takes the lock first; later ones know the head).
  for (let i = 0; i < JOBS; i++) {
    const { job } = await measure('enqueue', () => ledger.enqueue('lone', { type: 'work', payload: { i } }));
    await measure('claim', () => ledger.claim('lone', { workerId: 'w', types: ['work'], leaseSeconds: 60 }));
    await measure('progress', () => ledger.progress('lone', job.id, 'w', { phase: 'analyze', itemsDone: 1, itemsTotal: 2 }));
    await measure('complete', () => ledger.complete('lone', job.id, 'w'));
  }
  const med = (a) => round(summary(a).p50);
  for (const [op, o] of Object.entries(perOp)) {
    rowsOut.push({
      load: 'lone',
      op,
      units_per_batch: 1,
      messages: summary(o.batches.map((b) => b.messages)).p50,
      total_ms: med(o.total),
      tx_ms: med(o.batches.map((b) => b.txMs)),
      head_locked_ms: med(o.batches.map((b) => b.lockedMs)),
      max_tenant_tx_per_s: Math.round(1000 / summary(o.batches.map((b) => b.lockedMs)).p50),
    });
  }
  // Busy: 32 callers on one tenant.
  await ledger.enqueueMany('busy', Array.from({ length: Math.max(JOBS * 5, 1000) }, (_, i) => ({ type: 'work', payload: { i } })));
  current = [];
  await Promise.all(
    Array.from({ length: 32 }, async (_, w) => {
      for (;;) {
        const c = await ledger.claim('busy', { workerId: `w${w}`, types: ['work'], leaseSeconds: 60 });
        if (!c) return;
        await ledger.progress('busy', c.job.id, `w${w}`, { phase: 'analyze', itemsDone: 1, itemsTotal: 2 });
        await ledger.complete('busy', c.job.id, `w${w}`);
      }
    }),
  );
  const busy = current;
  current = null;
  const units = busy.reduce((a, b) => a + b.units, 0);
  const lockedS = busy.reduce((a, b) => a + b.lockedMs, 0) / 1000;
  rowsOut.push({
    load: 'busy (32 callers)',
    op: 'claim/progress/complete',
    units_per_batch: round(units / busy.length, 1),
    messages: summary(busy.map((b) => b.messages)).p50,
    total_ms: '',
    tx_ms: med(busy.map((b) => b.txMs)),
    head_locked_ms: med(busy.map((b) => b.lockedMs)),
    max_tenant_tx_per_s: Math.round(units / lockedS),
  });
  // Same-run floor: a bare single-row INSERT and COMMIT (one WAL flush) on the same server.
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  await c.query('CREATE TABLE bare (id serial PRIMARY KEY, v text)');
  const bare = [];
  for (let i = 0; i < JOBS; i++) {
    await c.query('BEGIN');
    await c.query("INSERT INTO bare (v) VALUES ('x')");
    const t0 = performance.now();
    await c.query('COMMIT');
    bare.push(performance.now() - t0);
  }
  await c.end();
  await pool.end();
  for (const r of rowsOut) r.bare_commit_ms = round(summary(bare).p50);
} finally {
  await pgsrv.stop();
}
table(rowsOut);
console.log('\nmedians, ms; messages = round trips of one batch transaction; head_locked = from the message taking the positions to the end of COMMIT.');
writeResult('ledger-breakdown', { jobs: JOBS, rows: rowsOut });
