// Where okit's ledger time goes in the throughput benchmark: runs the okit part of
// ledger-throughput.mjs (LEDGER_SYSTEMS=okit) under `node --cpu-prof` against a throwaway embedded
// Postgres with pg_stat_statements loaded, then prints the top Node self-time functions
// (profile-top.mjs) and the top statements by total execution time.
// Usage: node scripts/bench/ledger-profile.mjs [jobs=2000] [workers=8] [outdir=$TMPDIR/okit-ledger-prof]
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { EmbeddedPostgres, tempHome } from '../../dist/db/embedded.js';
import { ROOT } from './lib.mjs';

const [jobs = '2000', workers = '8', out = path.join(os.tmpdir(), 'okit-ledger-prof')] = process.argv.slice(2);
fs.mkdirSync(out, { recursive: true });
const home = tempHome('okit-prof-');
const pgc = new EmbeddedPostgres(home);
const sql = async (url, q) => {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return (await c.query(q)).rows;
  } finally {
    await c.end();
  }
};
try {
  await pgc.start();
  await sql(pgc.url(), `ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'`);
  await sql(pgc.url(), `ALTER SYSTEM SET pg_stat_statements.track = 'all'`);
  await pgc.stop();
  await pgc.start();
  await sql(pgc.url(), 'CREATE EXTENSION IF NOT EXISTS pg_stat_statements');
  await sql(pgc.url(), 'SELECT pg_stat_statements_reset()');
  execFileSync(process.execPath, ['--cpu-prof', `--cpu-prof-dir=${out}`, 'scripts/bench/ledger-throughput.mjs', jobs, workers], {
    cwd: ROOT,
    stdio: 'inherit',
    env: { ...process.env, DATABASE_URL: pgc.url(), LEDGER_SYSTEMS: 'okit' },
  });
  const prof = fs.readdirSync(out).filter((f) => f.endsWith('.cpuprofile')).map((f) => path.join(out, f)).sort((a, b) => fs.statSync(b).mtimeMs - fs.statSync(a).mtimeMs)[0];
  execFileSync(process.execPath, ['scripts/bench/profile-top.mjs', prof, '20'], { cwd: ROOT, stdio: 'inherit' });
  const rows = await sql(
    pgc.url(),
    `SELECT round(total_exec_time::numeric, 1) AS total_ms, calls, round(mean_exec_time::numeric, 3) AS mean_ms, rows,
            round((100 * total_exec_time / sum(total_exec_time) OVER ())::numeric, 1) AS pct, left(regexp_replace(query, '\\s+', ' ', 'g'), 110) AS query
       FROM pg_stat_statements JOIN pg_database d ON d.oid = dbid WHERE d.datname LIKE 'bench_%'
      ORDER BY total_exec_time DESC LIMIT 15`,
  );
  console.log('\npg_stat_statements, okit bench databases, by total execution time:');
  console.table(rows);
} finally {
  await pgc.destroy().finally(() => fs.rmSync(home, { recursive: true, force: true }));
}
