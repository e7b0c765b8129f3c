import type { Command } from 'commander';
import { OkitError } from '../errors.js';
import * as v from '../ledger/validate.js';
import { OkitClient } from '../worker/client.js';
import { followJob } from '../worker/follow.js';
import { action, type Io } from './io.js';

export interface JobStatusOptions {
  watch?: boolean;
  url?: string;
  token?: string;
}

export function clientFrom(opts: { url?: string; token?: string }, io: Io): OkitClient {
  const url = opts.url ?? io.env.OKIT_URL ?? 'http://127.0.0.1:8080';
  const token = opts.token ?? io.env.OKIT_TOKEN;
  if (!token) throw new OkitError('INVALID_INPUT', 'a token is needed: --token or OKIT_TOKEN (see `okit tokens create`)');
  return new OkitClient({ url, token });
}

/** Exit 0 on succeeded (or still running without --watch), 1 on failed or canceled. */
export async function runJobStatus(jobId: string, opts: JobStatusOptions, io: Io): Promise<number> {
  v.uuid(jobId, 'job_id');
  const r = await followJob(clientFrom(opts, io), jobId, { watch: !!opts.watch, out: io.out, err: io.err });
  return r.exitCode;
}

export function register(program: Command, io: Io): void {
  const job = program.command('job').description('jobs, through the HTTP API of `okit serve`');
  job
    .command('status <jobId>')
    .description("print the job's first signal; with --watch follow it to the end (exit 0 succeeded, 1 failed or canceled)")
    .option('--watch', 'follow with the 2-second long-poll until a terminal signal')
    .option('--url <url>', 'server (default $OKIT_URL or http://127.0.0.1:8080)')
    .option('--token <token>', 'bearer token (default $OKIT_TOKEN)')
    .action(action(io, (id: string, o: JobStatusOptions) => runJobStatus(id, o, io)));
}
