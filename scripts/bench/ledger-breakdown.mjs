// Where a ledger transaction's time goes: every statement of enqueue, claim, progress and complete
// timed from this process (one worker, no contention), and how long the tenant's ledger head row
// is locked (from the position bump to the end of COMMIT) — the window in which no other
// transaction of the same tenant can commit. Its inverse bounds one tenant's transitions per
// second; `commit_ms` (the NOTIFY + COMMIT round trip, with the WAL flush) is the floor, compared
// in the same run with a bare `INSERT; COMMIT` on the same server.
// Usage: node scripts/bench/ledger-breakdown.mjs [jobs=200]
import pg from 'pg';
import { createPool } from '../../dist/db/pool.js';
import { Ledger } from '../../dist/ledger/ledger.js';
import { createDatabase, round, startPostgres, summary, table, writeResult } from './lib.mjs';

const JOBS = Number(process.argv[2] ?? 200);

// Times every query issued through pg.Client in this process, labelled by its first words.
let current = null;
const orig = pg.Client.prototype.query;
pg.Client.prototype.query = function (config, ...rest) {
  const text = typeof config === 'string' ? config : config?.text ?? '';
  const t0 = performance.now();
  const p = orig.call(this, config, ...rest);
  if (current && p && typeof p.then === 'function') {
    const label = text.includes('ledger_heads') ? 'head (pos+1)' : text.endsWith('COMMIT') ? 'notify+commit' : text.replace(/\s+/g, ' ').trim().slice(0, 28);
    const rec = current;
    p.then(() => rec.push([label, t0, performance.now()]), () => undefined);
  }
  return p;
};

const pgsrv = await startPostgres();
const perOp = {};
const rowsOut = [];
try {
  const url = await createDatabase(pgsrv.url, 'bench_breakdown', { migrated: true });
  const pool = createPool(url, { max: 2 });
  const ledger = new Ledger(pool);
  const measure = async (op, fn) => {
    current = [];
    const t0 = performance.now();
    await fn();
    const t1 = performance.now();
    const rec = current;
    current = null;
    const head = rec.find(([l]) => l === 'head (pos+1)');
    const commit = rec.find(([l]) => l === 'notify+commit' || l === 'COMMIT');
    const o = (perOp[op] ??= { total: [], locked: [], commit: [], statements: [], queries: {} });
    o.total.push(t1 - t0);
    if (head && commit) o.locked.push(commit[2] - head[1]);
    if (commit) o.commit.push(commit[2] - commit[1]);
    o.statements.push(rec.length);
    for (const [l, a, b] of rec) (o.queries[l] ??= []).push(b - a);
  };
  for (let i = 0; i < JOBS; i++) {
    let id;
    await measure('enqueue', async () => (id = (await ledger.enqueue('bench', { type: 'work', payload: { i } })).job.id));
    await measure('claim', () => ledger.claim('bench', { workerId: 'w', types: ['work'], leaseSeconds: 60 }));
    await measure('progress', () => ledger.progress('bench', id, 'w', { phase: 'analyze', itemsDone: 1, itemsTotal: 2 }));
    await measure('complete', () => ledger.complete('bench', id, 'w'));
  }
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
  const bareP50 = summary(bare).p50;
  for (const [op, o] of Object.entries(perOp)) {
    const med = (a) => round(summary(a).p50);
    rowsOut.push({
      op,
      statements: summary(o.statements).p50,
      total_ms: med(o.total),
      head_locked_ms: med(o.locked),
      commit_ms: med(o.commit),
      bare_commit_ms: round(bareP50),
      max_tenant_tx_per_s: Math.round(1000 / summary(o.locked).p50),
      slowest: Object.entries(o.queries)
        .map(([l, v]) => [l, summary(v).p50])
        .sort((a, b) => b[1] - a[1])
        .slice(0, 3)
        .map(([l, v]) => `${l} ${v.toFixed(2)}`)
        .join('; '),
    });
  }
} finally {
  await pgsrv.stop();
}
table(rowsOut);
console.log('\nmedians; head_locked = from the ledger_heads update to the end of COMMIT; its inverse bounds one tenant\'s transitions/s.');
writeResult('ledger-breakdown', { jobs: JOBS, rows: rowsOut });
