// Verify and replay: `okit verify` of a bundle against `sha256sum` of the same file (the floor:
// reading and hashing every byte once), and `okit replay` (which verifies first, then folds every
// history row through the live projection and compares with snapshots.jsonl), all as separate
// processes, back to back in rounds (sha256sum, verify, replay), so that background load hits
// each alike; the ratios are per round, and the medians of those are reported. Then one
// `okit replay --into` an empty database. Peak memory is VmHWM of the CLI process (all its
// threads); CPU is the sum over its threads. The bundle is made by `okit export` from a seeded
// ledger (bundle-data.mjs).
// Usage: node scripts/bench/verify-replay.mjs [rows=100000,1000000] [rounds=5]
// OKIT_BENCH_RESULT=NAME writes scripts/bench/results/NAME.json instead of verify-replay.json.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createDatabase, ROOT, round, startPostgres, table, writeResult } from './lib.mjs';
import { median, psql, seedLedger, timed } from './bundle-data.mjs';

const SIZES = (process.argv[2] ?? '100000,1000000').split(',').map(Number);
const ROUNDS = Number(process.argv[3] ?? 5);
const CLI = path.resolve(ROOT, process.env.OKIT_CLI ?? 'dist/cli/main.js');
const TENANT = 'bench';
const mib = (b) => round(b / 2 ** 20, 1);

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'okit-bench-verify-'));
const okit = (args, env = {}) => timed(process.execPath, [CLI, ...args], { env: { ...process.env, ...env } });

const help = await okit(['verify', '--help']);
if (help.code !== 0) {
  console.error(`okit verify is not in this build (${CLI}): the audit-bundle work (issue 4) has not landed; nothing measured`);
  writeResult(process.env.OKIT_BENCH_RESULT ?? 'verify-replay', { status: 'missing: okit verify/replay not in this build', rows: [] });
  process.exit(0);
}

const pgsrv = await startPostgres();
const rows = [];
const load = [];
try {
  const keys = await okit(['keys', 'generate', '--out', path.join(work, 'keys')]);
  if (keys.code !== 0) throw new Error('keys generate failed: ' + keys.err);
  const key = path.join(work, 'keys', 'okit-signing.key');
  const pub = path.join(work, 'keys', 'okit-signing.pub');
  for (const n of SIZES) {
    const url = await createDatabase(pgsrv.url, `bench_verify_${n}`, { migrated: true });
    seedLedger(url, TENANT, n, work);
    const ex = await okit(['export', '--tenant', TENANT, '--key', key, '--out', path.join(work, 'b'), '--json'], { DATABASE_URL: url });
    if (ex.code !== 0) throw new Error('okit export failed: ' + ex.err);
    psql(pgsrv.url, `DROP DATABASE bench_verify_${n} WITH (FORCE)`);
    const { path: bundle, bytes } = JSON.parse(ex.out.trim().split('\n').pop());

    const runs = [];
    for (let r = 0; r < ROUNDS; r++) {
      load.push(os.loadavg()[0]);
      const s = await timed('sha256sum', [bundle]);
      const v = await okit(['verify', bundle, '--pubkey', pub, '--json']);
      const rp = await okit(['replay', bundle, '--pubkey', pub, '--json']);
      if (v.code !== 0) throw new Error('okit verify failed: ' + v.out.slice(0, 2000) + v.err);
      if (rp.code !== 0) throw new Error('okit replay failed: ' + rp.out.slice(0, 2000) + rp.err);
      runs.push({ s, v, rp, identical: JSON.parse(rp.out.trim().split('\n').pop()).identical });
      console.error(`  ${n} round ${r + 1}: sha256sum ${s.seconds.toFixed(2)} s, verify ${v.seconds.toFixed(2)} s (${(v.seconds / s.seconds).toFixed(1)}x), replay ${rp.seconds.toFixed(2)} s`);
    }
    // replay --into an empty database: streamed, inserted in batches.
    const target = await createDatabase(pgsrv.url, `bench_into_${n}`, { migrated: true });
    const into = await okit(['replay', bundle, '--pubkey', pub, '--into', target, '--json']);
    if (into.code !== 0) throw new Error('okit replay --into failed: ' + into.out.slice(0, 2000) + into.err);
    psql(pgsrv.url, `DROP DATABASE bench_into_${n} WITH (FORCE)`);
    const m = (f) => median(runs.map(f));
    rows.push({
      history_rows: n,
      bundle_mib: mib(bytes),
      rounds: ROUNDS,
      sha256sum_s: round(m((x) => x.s.seconds), 3),
      verify_s: round(m((x) => x.v.seconds)),
      verify_ratio: round(m((x) => x.v.seconds / x.s.seconds), 1),
      verify_ratio_min_max: `${round(Math.min(...runs.map((x) => x.v.seconds / x.s.seconds)), 1)}–${round(Math.max(...runs.map((x) => x.v.seconds / x.s.seconds)), 1)}`,
      verify_cpu_s: round(m((x) => x.v.cpu)),
      // CPU seconds do not depend on how many other processes share the cores.
      sha256sum_cpu_s: round(m((x) => x.s.cpu)),
      verify_cpu_ratio: round(m((x) => x.v.cpu / Math.max(0.01, x.s.cpu)), 1),
      verify_peak_rss_mib: mib(Math.max(...runs.map((x) => x.v.peakRss))),
      replay_s: round(m((x) => x.rp.seconds)),
      replay_events_per_s: Math.round(n / m((x) => x.rp.seconds)),
      replay_peak_rss_mib: mib(Math.max(...runs.map((x) => x.rp.peakRss))),
      replay_identical: runs[0].identical,
      into_s: round(into.seconds),
      into_rows_per_s: Math.round(n / into.seconds),
      into_peak_rss_mib: mib(into.peakRss),
    });
    fs.rmSync(path.join(work, 'b'), { recursive: true, force: true });
  }
} finally {
  await pgsrv.stop();
  fs.rmSync(work, { recursive: true, force: true });
}
table(rows);
writeResult(process.env.OKIT_BENCH_RESULT ?? 'verify-replay', {
  okit_cli: path.relative(ROOT, CLI) || CLI,
  okit_cli_note: process.env.OKIT_CLI_NOTE ?? null,
  method:
    'rounds of sha256sum, okit verify, okit replay back to back (CLI processes, including Node start-up); ratio = verify/sha256sum within a round, median over rounds; peak RSS = largest VmHWM over rounds; CPU = sum over the process threads (median); replay includes its own verification; into = one okit replay --into an empty database',
  load_average_during_rounds: `${round(Math.min(...load), 1)}–${round(Math.max(...load), 1)}`,
  rows,
});
