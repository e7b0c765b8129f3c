// Runs the okit CLI with the V8 CPU profiler on its main thread (`node --cpu-prof` is not
// allowed in NODE_OPTIONS, and the benchmarks start the CLI themselves), writing
// $OKIT_PROF_DIR/<command>-<pid>.cpuprofile at exit; summarise with profile-top.mjs.
// Usage: OKIT_CLI=scripts/bench/cpu-prof-cli.mjs OKIT_PROF_DIR="$(mktemp -d)" node scripts/bench/export.mjs 100000 1
import fs from 'node:fs';
import { Session } from 'node:inspector';
import path from 'node:path';

const dir = process.env.OKIT_PROF_DIR ?? '.';
const session = new Session();
session.connect();
// Same-thread inspector sessions answer synchronously, so the profile can be taken in 'exit'.
session.post('Profiler.enable');
session.post('Profiler.setSamplingInterval', { interval: 1000 });
session.post('Profiler.start');
process.on('exit', () => {
  session.post('Profiler.stop', (err, res) => {
    if (!err) fs.writeFileSync(path.join(dir, `${process.argv[2] ?? 'okit'}-${process.pid}.cpuprofile`), JSON.stringify(res.profile));
  });
});
await import('../../dist/cli/main.js');
