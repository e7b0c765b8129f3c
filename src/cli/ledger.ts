import type { Command } from 'commander';
import { checkLedger } from '../ledger/check.js';
import * as v from '../ledger/validate.js';
import { withDb } from './context.js';
import { action, EXIT, type Io } from './io.js';

export interface LedgerCheckOptions {
  tenant?: string;
  json?: boolean;
}

export async function runLedgerCheck(opts: LedgerCheckOptions, io: Io): Promise<number> {
  if (opts.tenant !== undefined) v.tenant(opts.tenant); // `--tenant ""` is a mistake, not "every tenant"
  const report = await withDb(io, ({ pool }) => checkLedger(pool, { tenant: opts.tenant }));
  if (opts.json) {
    io.out(JSON.stringify({ ok: report.problems.length === 0, ...report }));
  } else {
    for (const p of report.problems)
      io.out(`BROKEN ${p.code} tenant=${p.tenant}${p.job_id ? ` job=${p.job_id}` : ''}${p.n !== null ? ` row=${p.n}` : ''}${p.pos !== null ? ` pos=${p.pos}` : ''}: ${p.message}`);
    io.out(
      report.problems.length === 0
        ? `ledger intact: ${report.jobs} jobs, ${report.rows} history rows, every chain and position checked`
        : `ledger BROKEN: ${report.problems.length} problems in ${report.brokenJobs.length} jobs (${report.jobs} jobs, ${report.rows} rows checked)`,
    );
  }
  return report.problems.length === 0 ? EXIT.OK : EXIT.CHECK_FAILED;
}

export function register(program: Command, io: Io): void {
  const ledger = program.command('ledger').description('inspect the job ledger');
  ledger
    .command('check')
    .description("verify every job's hash chain and the ledger positions; exit 0 intact, 1 broken")
    .option('--tenant <tenant>', 'only this tenant')
    .option('--json', 'machine-readable report')
    .action(action(io, (o: LedgerCheckOptions) => runLedgerCheck(o, io)));
}
