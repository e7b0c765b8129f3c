import type { Command } from 'commander';
import { OkitError } from '../errors.js';
import * as v from '../ledger/validate.js';
import { TtfsReporter } from '../telemetry/reporter.js';
import { detectSurface } from '../telemetry/surface.js';
import { OkitClient } from '../worker/client.js';
import { followJob } from '../worker/follow.js';
import { terminalLine } from '../util/terminal.js';
import { action, type Io } from './io.js';
import { registerJobCommands } from './control.js';

export interface JobStatusOptions {
  watch?: boolean;
  url?: string;
  token?: string;
  verbose?: boolean;
}

export function clientFrom(opts: { url?: string; token?: string }, io: Io, surface?: string): OkitClient {
  const url = opts.url ?? io.env.OKIT_URL ?? 'http://127.0.0.1:8080';
  const token = opts.token ?? io.env.OKIT_TOKEN;
  if (!token) throw new OkitError('INVALID_INPUT', 'a token is needed: --token or OKIT_TOKEN (see `okit tokens create`)');
  return new OkitClient({ url, token, surface });
}

/**
 * Exit 0 on succeeded (or still running without --watch), 1 on failed or canceled. Reports its
 * time to first signal as `cli` (or `ci` under a CI system); --verbose prints the figure.
 */
export async function runJobStatus(jobId: string, opts: JobStatusOptions, io: Io): Promise<number> {
  const startedAt = io.startedAt ?? performance.now();
  v.uuid(jobId, 'job_id');
  const surface = detectSurface(io.env);
  const client = clientFrom(opts, io, surface);
  const reporter = new TtfsReporter(client, { surface, startedAt, verbose: !!opts.verbose, err: io.err });
  try {
    const r = await followJob(client, jobId, { watch: !!opts.watch, out: io.out, err: io.err, onSignal: (_s, _e, reply) => reporter.firstSignal(jobId, reply) });
    return r.exitCode;
  } catch (e) {
    reporter.error(jobId, e);
    throw e;
  } finally {
    await reporter.flush();
  }
}

export interface JobHistoryOptions {
  url?: string;
  token?: string;
  json?: boolean;
}

/** One line per history row: `n  at  event  from → to  data`. */
export async function runJobHistory(jobId: string, opts: JobHistoryOptions, io: Io): Promise<number> {
  v.uuid(jobId, 'job_id');
  const rows = await clientFrom(opts, io).history(jobId);
  for (const r of rows) {
    // JSON.stringify escapes C0 controls but not C1 or bidi controls; terminalLine does, and
    // its \uXXXX escapes keep a --json line valid JSON with the same meaning.
    if (opts.json) io.out(terminalLine(JSON.stringify(r)));
    else io.out(terminalLine(`${String(r.n).padStart(3)}  ${r.at}  ${r.event.padEnd(15)} ${(r.from_state ?? '-').padEnd(11)} → ${r.to_state.padEnd(11)} ${JSON.stringify(r.data)}`));
  }
  return 0;
}

export function register(program: Command, io: Io): void {
  const job = program.command('job').description('jobs, through the HTTP API of `okit serve`');
  job
    .command('status <jobId>')
    .description("print the job's first signal; with --watch follow it to the end (exit 0 succeeded, 1 failed or canceled)")
    .option('--watch', 'follow with the 2-second long-poll until a terminal signal')
    .option('--verbose', 'also print the time to first signal (on stderr); it is reported to the server as cli, or ci under a CI system')
    .option('--url <url>', 'server (default $OKIT_URL or http://127.0.0.1:8080)')
    .option('--token <token>', 'bearer token (default $OKIT_TOKEN)')
    .action(action(io, (id: string, o: JobStatusOptions) => runJobStatus(id, o, io)));
  job
    .command('history <jobId>')
    .description("print the job's hash-chained history, one transition per line")
    .option('--json', 'one JSON history row per line')
    .option('--url <url>', 'server (default $OKIT_URL or http://127.0.0.1:8080)')
    .option('--token <token>', 'bearer token (default $OKIT_TOKEN)')
    .action(action(io, (id: string, o: JobHistoryOptions) => runJobHistory(id, o, io)));
  registerJobCommands(job, io);
}
