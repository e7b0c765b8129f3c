// Verify and replay: `okit verify` of a bundle against `sha256sum` of the same file (the floor:
// reading and hashing every byte once), and `okit replay` (which verifies first, then folds every
// history row through the live projection and compares with snapshots.jsonl) in events per
// second, both as separate processes, same run. The bundle is made by `okit export` from a
// seeded ledger (bundle-data.mjs). Usage: node scripts/bench/verify-replay.mjs [rows=100000,1000000] [repeats=3]
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createDatabase, ROOT, round, startPostgres, table, writeResult } from './lib.mjs';
import { psql, seedLedger, timed } from './bundle-data.mjs';

const SIZES = (process.argv[2] ?? '100000,1000000').split(',').map(Number);
const REPEATS = Number(process.argv[3] ?? 3);
const CLI = path.resolve(ROOT, process.env.OKIT_CLI ?? 'dist/cli/main.js');
const TENANT = 'bench';
const mib = (b) => round(b / 2 ** 20, 1);
const best = (runs) => runs.reduce((a, b) => (b.seconds < a.seconds ? b : a));

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'okit-bench-verify-'));
const okit = (args, env = {}) => timed(process.execPath, [CLI, ...args], { env: { ...process.env, ...env } });

const help = await okit(['verify', '--help']);
if (help.code !== 0) {
  console.error(`okit verify is not in this build (${CLI}): the audit-bundle work (issue 4) has not landed; nothing measured`);
  writeResult('verify-replay', { status: 'missing: okit verify/replay not in this build', rows: [] });
  process.exit(0);
}

const pgsrv = await startPostgres();
const rows = [];
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

    // Alternate the runs so background load hits each alike; keep the best of REPEATS.
    const sums = [];
    const verifies = [];
    const replays = [];
    for (let r = 0; r < (n >= 1_000_000 ? 1 : REPEATS); r++) {
      sums.push(await timed('sha256sum', [bundle]));
      verifies.push(await okit(['verify', bundle, '--pubkey', pub, '--json']));
      replays.push(await okit(['replay', bundle, '--pubkey', pub, '--json']));
    }
    const s = best(sums);
    const v = best(verifies);
    const rp = best(replays);
    if (v.code !== 0) throw new Error('okit verify failed: ' + v.out.slice(0, 2000) + v.err);
    if (rp.code !== 0) throw new Error('okit replay failed: ' + rp.out.slice(0, 2000) + rp.err);
    const rj = JSON.parse(rp.out.trim().split('\n').pop());
    rows.push({
      history_rows: n,
      bundle_mib: mib(bytes),
      sha256sum_s: round(s.seconds, 3),
      verify_s: round(v.seconds),
      verify_ratio: round(v.seconds / s.seconds, 1),
      verify_mib_per_s: round(bytes / 2 ** 20 / v.seconds, 1),
      verify_peak_rss_mib: mib(v.peakRss),
      replay_s: round(rp.seconds),
      replay_events_per_s: Math.round(n / rp.seconds),
      replay_only_events_per_s: Math.round(n / Math.max(1e-3, rp.seconds - v.seconds)),
      replay_peak_rss_mib: mib(rp.peakRss),
      replay_identical: rj.identical,
    });
    console.error(`  ${n}: sha256sum ${s.seconds.toFixed(2)} s, verify ${v.seconds.toFixed(2)} s, replay ${rp.seconds.toFixed(2)} s`);
    fs.rmSync(path.join(work, 'b'), { recursive: true, force: true });
  }
} finally {
  await pgsrv.stop();
  fs.rmSync(work, { recursive: true, force: true });
}
table(rows);
writeResult('verify-replay', {
  okit_cli: path.relative(ROOT, CLI) || CLI,
  okit_cli_note: process.env.OKIT_CLI_NOTE ?? null,
  method:
    'best of N alternating runs; okit verify/replay as CLI processes (including Node start-up, ~0.1-0.3 s); replay includes its own verification (replay_only = replay − verify time); sha256sum = GNU coreutils over the same file',
  rows,
});
