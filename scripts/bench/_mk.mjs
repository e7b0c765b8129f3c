import fs from 'node:fs';
import path from 'node:path';
import { createDatabase, startPostgres } from './lib.mjs';
import { seedLedger, timed } from './bundle-data.mjs';
const n = Number(process.argv[2] ?? 100000);
const work = '/tmp/i10scratch/w' + n;
fs.mkdirSync(work, { recursive: true });
const pgsrv = await startPostgres();
try {
  const url = await createDatabase(pgsrv.url, `mk_${n}`, { migrated: true });
  seedLedger(url, 'bench', n, work);
  const r = await timed(process.execPath, ['dist/cli/main.js', 'export', '--tenant', 'bench', '--key', 'bundles/sample/INSECURE-test-signing.key', '--out', work, '--json'], { env: { ...process.env, DATABASE_URL: url } });
  console.log(r.code, r.seconds, r.peakRss, r.out.slice(0, 200), r.err.slice(0, 500));
} finally { await pgsrv.stop(); }
