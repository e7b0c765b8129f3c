// Export: `okit export` of a tenant with 100,000 and 1,000,000 history rows: wall time against
// `psql \copy` of the same rows (history, jobs, snapshots) as JSON lines from the same database in
// the same run (the ratio), the bundle size, and the export process's peak resident memory
// (VmHWM, sampled from /proc), which must stay flat from 100k to 1M rows.
// Both run as separate processes against the same warm Postgres. The 1M run takes a few minutes
// on 2 cores, most of it spent seeding. Usage: node scripts/bench/export.mjs [rows=100000,1000000]
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createDatabase, ROOT, round, startPostgres, table, writeResult } from './lib.mjs';
import { psql, seedLedger, timed } from './bundle-data.mjs';

const SIZES = (process.argv[2] ?? '100000,1000000').split(',').map(Number);
const CLI = path.resolve(ROOT, process.env.OKIT_CLI ?? 'dist/cli/main.js');
const TENANT = 'bench';
const mib = (b) => round(b / 2 ** 20, 1);

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'okit-bench-export-'));
fs.chmodSync(work, 0o755); // psql's \copy runs client-side, but keep it readable anyway
const okit = (args, env) => timed(process.execPath, [CLI, ...args], { env: { ...process.env, ...env } });

const help = await okit(['export', '--help'], {});
if (help.code !== 0) {
  console.error(`okit export is not in this build (${CLI}): the audit-bundle work (issue 4) has not landed; nothing measured`);
  writeResult('export', { status: 'missing: okit export not in this build', rows: [] });
  process.exit(0);
}

const pgsrv = await startPostgres();
const rows = [];
try {
  const keys = await okit(['keys', 'generate', '--out', path.join(work, 'keys')], {});
  if (keys.code !== 0) throw new Error('keys generate failed: ' + keys.err);
  const key = path.join(work, 'keys', 'okit-signing.key');
  for (const n of SIZES) {
    const url = await createDatabase(pgsrv.url, `bench_export_${n}`, { migrated: true });
    const t0 = performance.now();
    const seeded = seedLedger(url, TENANT, n, work);
    console.error(`  seeded ${seeded.rows} history rows (${seeded.jobs} jobs) in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    // Apply any later migrations (the bundle work's) before timing, as `okit export` would.
    await okit(['db', 'migrate'], { DATABASE_URL: url });

    const dump = path.join(work, `copy-${n}`);
    fs.mkdirSync(dump, { recursive: true });
    const copy = await timed(process.env.PSQL ?? '/usr/bin/psql', [
      url,
      '-v',
      'ON_ERROR_STOP=1',
      '-q',
      '-c',
      `\\copy (SELECT to_jsonb(h) FROM okit.job_history h WHERE tenant = '${TENANT}' ORDER BY pos) TO '${dump}/history.jsonl'`,
      '-c',
      `\\copy (SELECT to_jsonb(j) FROM okit.jobs j WHERE tenant = '${TENANT}' ORDER BY id) TO '${dump}/jobs.jsonl'`,
      '-c',
      `\\copy (SELECT to_jsonb(s) FROM okit.first_signal_snapshots s WHERE tenant = '${TENANT}' ORDER BY job_id) TO '${dump}/snapshots.jsonl'`,
    ]);
    if (copy.code !== 0) throw new Error('psql \\copy failed: ' + copy.err);
    const copyBytes = fs.readdirSync(dump).reduce((a, f) => a + fs.statSync(path.join(dump, f)).size, 0);
    fs.rmSync(dump, { recursive: true });

    const outDir = path.join(work, `bundles-${n}`);
    const ex = await okit(['export', '--tenant', TENANT, '--key', key, '--out', outDir, '--json'], { DATABASE_URL: url });
    if (ex.code !== 0) throw new Error('okit export failed: ' + ex.err);
    const res = JSON.parse(ex.out.trim().split('\n').pop());
    rows.push({
      history_rows: n,
      okit_export_s: round(ex.seconds),
      psql_copy_s: round(copy.seconds),
      ratio: round(ex.seconds / copy.seconds),
      okit_rows_per_s: Math.round(n / ex.seconds),
      export_peak_rss_mib: mib(ex.peakRss),
      psql_peak_rss_mib: mib(copy.peakRss),
      bundle_mib: mib(res.bytes),
      copy_mib: mib(copyBytes),
    });
    console.error(`  ${n}: export ${ex.seconds.toFixed(1)} s (peak ${mib(ex.peakRss)} MiB), psql \\copy ${copy.seconds.toFixed(1)} s`);
    // verify-replay.mjs can reuse the largest bundle and key when asked to.
    if (process.env.OKIT_BENCH_KEEP) fs.copyFileSync(res.path, path.join(process.env.OKIT_BENCH_KEEP, `bundle-${n}.tar`));
    fs.rmSync(outDir, { recursive: true, force: true });
    psql(pgsrv.url, `DROP DATABASE bench_export_${n} WITH (FORCE)`);
  }
} finally {
  await pgsrv.stop();
  fs.rmSync(work, { recursive: true, force: true });
}
table(rows);
const flat = rows.length >= 2 ? round(rows[rows.length - 1].export_peak_rss_mib / rows[0].export_peak_rss_mib) : null;
console.log(`\npeak memory ratio, largest/smallest export: ${flat} (flat = about 1)`);
writeResult('export', {
  okit_cli: path.relative(ROOT, CLI) || CLI,
  okit_cli_note: process.env.OKIT_CLI_NOTE ?? null,
  method:
    'okit export (CLI, its own process) vs psql 15 \\copy (SELECT to_jsonb(..) ORDER BY ..) of the same history, jobs and snapshot rows to JSON-lines files, same warm database, same run; peak RSS = VmHWM sampled from /proc every 20 ms',
  peak_rss_ratio_largest_smallest: flat,
  rows,
});
