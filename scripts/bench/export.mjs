// Export: `okit export` of a tenant with 100,000 and 1,000,000 history rows: wall time against
// `psql \copy` of the same rows (history, jobs, snapshots) as JSON lines from the same database,
// back to back in rounds (the ratio is per round; the median is reported), the bundle size, and
// the export process's peak resident memory (VmHWM, sampled from /proc), which must stay flat
// from 100k to 1M rows. Both run as separate processes against the same warm Postgres. The 1M
// run takes several minutes on 2 cores, much of it seeding.
// Usage: node scripts/bench/export.mjs [rows=100000,1000000] [rounds=3]
// OKIT_BENCH_RESULT=NAME writes scripts/bench/results/NAME.json instead of export.json (one size per file).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createDatabase, ROOT, round, startPostgres, table, writeResult } from './lib.mjs';
import { median, psql, seedLedger, timed } from './bundle-data.mjs';

const SIZES = (process.argv[2] ?? '100000,1000000').split(',').map(Number);
const ROUNDS = Number(process.argv[3] ?? 3);
const CLI = path.resolve(ROOT, process.env.OKIT_CLI ?? 'dist/cli/main.js');
const TENANT = 'bench';
const mib = (b) => round(b / 2 ** 20, 1);

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'okit-bench-export-'));
fs.chmodSync(work, 0o755); // psql's \copy runs client-side, but keep it readable anyway
const okit = (args, env) => timed(process.execPath, [CLI, ...args], { env: { ...process.env, ...env } });

const help = await okit(['export', '--help'], {});
if (help.code !== 0) {
  console.error(`okit export is not in this build (${CLI}): the audit-bundle work (issue 4) has not landed; nothing measured`);
  writeResult(process.env.OKIT_BENCH_RESULT ?? 'export', { status: 'missing: okit export not in this build', rows: [] });
  process.exit(0);
}

const pgsrv = await startPostgres();
const rows = [];
const load = [];
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
    const copy = () =>
      timed(process.env.PSQL ?? '/usr/bin/psql', [
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
    const outDir = path.join(work, `bundles-${n}`);
    const runs = [];
    let copyBytes = 0;
    let res;
    for (let r = 0; r < ROUNDS; r++) {
      load.push(os.loadavg()[0]);
      fs.mkdirSync(dump, { recursive: true });
      const c = await copy();
      if (c.code !== 0) throw new Error('psql \\copy failed: ' + c.err);
      copyBytes = fs.readdirSync(dump).reduce((a, f) => a + fs.statSync(path.join(dump, f)).size, 0);
      fs.rmSync(dump, { recursive: true });
      fs.rmSync(outDir, { recursive: true, force: true });
      const ex = await okit(['export', '--tenant', TENANT, '--key', key, '--out', outDir, '--json'], { DATABASE_URL: url });
      if (ex.code !== 0) throw new Error('okit export failed: ' + ex.err);
      res = JSON.parse(ex.out.trim().split('\n').pop());
      runs.push({ c, ex });
      console.error(`  ${n} round ${r + 1}: export ${ex.seconds.toFixed(1)} s (peak ${mib(ex.peakRss)} MiB), psql \\copy ${c.seconds.toFixed(1)} s: ${(ex.seconds / c.seconds).toFixed(2)}x`);
    }
    const m = (f) => median(runs.map(f));
    rows.push({
      history_rows: n,
      rounds: ROUNDS,
      okit_export_s: round(m((x) => x.ex.seconds)),
      psql_copy_s: round(m((x) => x.c.seconds)),
      ratio: round(m((x) => x.ex.seconds / x.c.seconds)),
      ratio_min_max: `${round(Math.min(...runs.map((x) => x.ex.seconds / x.c.seconds)))}–${round(Math.max(...runs.map((x) => x.ex.seconds / x.c.seconds)))}`,
      okit_rows_per_s: Math.round(n / m((x) => x.ex.seconds)),
      okit_cpu_s: round(m((x) => x.ex.cpu)),
      export_peak_rss_mib: mib(Math.max(...runs.map((x) => x.ex.peakRss))),
      psql_peak_rss_mib: mib(Math.max(...runs.map((x) => x.c.peakRss))),
      bundle_mib: mib(res.bytes),
      copy_mib: mib(copyBytes),
    });
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
writeResult(process.env.OKIT_BENCH_RESULT ?? 'export', {
  okit_cli: path.relative(ROOT, CLI) || CLI,
  okit_cli_note: process.env.OKIT_CLI_NOTE ?? null,
  method:
    'rounds of psql 15 \\copy (SELECT to_jsonb(..) ORDER BY ..) of the same history, jobs and snapshot rows to JSON-lines files, then okit export (CLI, its own process), same warm database; ratio per round, median over rounds; peak RSS = largest VmHWM (sampled from /proc every 20 ms) over rounds; CPU = sum over the export process threads',
  load_average_during_rounds: `${round(Math.min(...load), 1)}–${round(Math.max(...load), 1)}`,
  peak_rss_ratio_largest_smallest: flat,
  rows,
});
