// `npm run bench`: every benchmark in turn (each starts its own throwaway Postgres), then the
// latency plot. Not part of `npm test`. Build first (`npm run build`). A failing benchmark is
// reported and the others still run; the exit code says whether all passed.
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { ROOT } from './lib.mjs';

const BENCHES = ['signal-latency', 'fanout', 'get-throughput', 'telemetry', 'ledger-throughput', 'ledger-breakdown', 'export', 'verify-replay', 'claim-wake', 'eta-accuracy', 'eta-cost', 'console-ttfs'];
const only = process.argv.slice(2);
const failed = [];
for (const name of only.length ? only : BENCHES) {
  console.log(`\n=== ${name} ===`);
  const t0 = performance.now();
  const r = spawnSync(process.execPath, [path.join(ROOT, 'scripts/bench', `${name}.mjs`)], { stdio: 'inherit' });
  console.log(`=== ${name}: ${r.status === 0 ? 'done' : 'FAILED'} in ${((performance.now() - t0) / 1000).toFixed(0)} s`);
  if (r.status !== 0) failed.push(name);
}
spawnSync(process.execPath, [path.join(ROOT, 'scripts/bench/plot.mjs')], { stdio: 'inherit' });
if (failed.length) {
  console.error(`\nfailed: ${failed.join(', ')}`);
  process.exitCode = 1;
}
