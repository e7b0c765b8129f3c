import type { Command } from 'commander';
import { parseSeed, simulate } from '../ledger/simulate.js';
import * as v from '../ledger/validate.js';
import { withDb } from './context.js';
import { action, EXIT, type Io } from './io.js';

export interface SimulateCliOptions {
  seed: string;
  jobs: string;
  tenant?: string;
  workers?: string;
  json?: boolean;
}

export async function runSimulate(opts: SimulateCliOptions, io: Io): Promise<number> {
  const seed = parseSeed(opts.seed);
  // Decimal digits only: Number() would take "0x10", " 16", "1e3" and "" (as 0).
  const jobs = v.decimalArg(opts.jobs, 'jobs', 1, 1_000_000);
  const workers = opts.workers === undefined ? 4 : v.decimalArg(opts.workers, 'workers', 1, 64);
  const tenant = v.tenant(opts.tenant ?? 'sim');
  const r = await withDb(io, ({ pool }) => simulate(pool, { seed, jobs, tenant, workers, progress: (l) => io.err(`okit: ${l}`) }));
  if (opts.json) {
    const { jobIds, ...rest } = r;
    io.out(JSON.stringify({ ...rest, jobIds: jobIds.length }));
  } else {
    io.out(`simulated ${r.jobs} jobs for tenant ${r.tenant} (seed ${r.seed}) from ${r.startedAt} to ${r.endedAt}`);
    io.out(`outcomes: ${Object.entries(r.outcomes).map(([k, n]) => `${k}=${n}`).join(' ')}`);
    io.out(`history rows: ${r.historyRows}, throttle events: ${r.throttleEvents}, queue events: ${r.queueEvents}, ledger head: ${r.ledgerHead}`);
    io.out(`history sha256: ${r.historyDigest}`);
  }
  return EXIT.OK;
}

export function register(program: Command, io: Io): void {
  program
    .command('simulate')
    .description('run a deterministic, seeded workload through the real ledger with a simulated clock')
    .requiredOption('--seed <n>', 'seed: integer 0..4294967295 (decimal or 0x hex)')
    .requiredOption('--jobs <m>', 'number of jobs to enqueue')
    .option('--tenant <tenant>', 'tenant to write into', 'sim')
    .option('--workers <k>', 'simulated workers', '4')
    .option('--json', 'print the result as JSON')
    .action(action(io, (o: SimulateCliOptions) => runSimulate(o, io)));
}
