import type { Command } from 'commander';
import { OkitError } from '../errors.js';
import { commandHandler, resolveCommand } from '../worker/command.js';
import { OkitWorker } from '../worker/worker.js';
import { terminalLine } from '../util/terminal.js';
import { action, type Io } from './io.js';
import { clientFrom } from './job.js';

export interface WorkOptions {
  type: string[];
  concurrency?: string;
  lease?: string;
  heartbeat?: string;
  timeout?: string;
  drain?: string;
  killGrace?: string;
  claimWait?: string;
  workerId?: string;
  url?: string;
  token?: string;
  verbose?: boolean;
}

/** A decimal number from the command line, or undefined when the flag is absent. */
function num(s: string | undefined, flag: string, integer = false): number | undefined {
  if (s === undefined) return undefined;
  if (!(integer ? /^[0-9]{1,9}$/ : /^[0-9]{1,9}(\.[0-9]{1,6})?$/).test(s)) throw new OkitError('INVALID_INPUT', `${flag}: must be a ${integer ? 'whole' : 'decimal'} number, got ${JSON.stringify(s)}`);
  return Number(s);
}

/**
 * Runs `command args` for each claimed job until SIGTERM/SIGINT (drain; a second one stops at
 * once). Exit 0 after a drain, 2 for a bad command, option or token (before any claim).
 */
export async function runWork(command: string, args: string[], opts: WorkOptions, io: Io): Promise<number> {
  if (!opts.type?.length) throw new OkitError('INVALID_INPUT', '--type: at least one job type is needed');
  const resolved = resolveCommand(command, io.env, io.cwd);
  const killGraceMs = 1000 * (num(opts.killGrace, '--kill-grace') ?? 5);
  const worker = new OkitWorker({
    client: clientFrom(opts, io),
    workerId: opts.workerId,
    types: opts.type,
    concurrency: num(opts.concurrency, '--concurrency', true),
    leaseSeconds: num(opts.lease, '--lease', true),
    heartbeatSeconds: num(opts.heartbeat, '--heartbeat'),
    timeoutSeconds: num(opts.timeout, '--timeout'),
    drainSeconds: num(opts.drain, '--drain'),
    claimWaitSeconds: num(opts.claimWait, '--claim-wait'),
    // The handler returns once its child is gone: SIGTERM, the kill grace, then SIGKILL.
    abortGraceMs: killGraceMs + 2000,
    handleSignals: true,
    handler: commandHandler({
      command: resolved,
      args,
      killGraceMs,
      env: io.env,
      cwd: io.cwd,
      onLog: opts.verbose ? (job, line) => io.err(terminalLine(`[${job.id.slice(0, 8)}] ${line}`)) : undefined,
      onBadLine: (job, line, why) => io.err(terminalLine(`okit work: job ${job.id}: ignored a line (${why}): ${line.slice(0, 200)}`)),
    }),
  });
  const say = (s: string) => io.err(terminalLine(`okit work: ${s}`));
  worker.on('claimed', ({ job, attempt }) => say(`job ${job.id} (${job.type}) claimed, attempt ${attempt}`));
  worker.on('completed', ({ job, ms }) => say(`job ${job.id} completed in ${Math.round(ms)} ms`));
  worker.on('failed', ({ job, code, retryable, ms }) => say(`job ${job.id} failed ${code} (${retryable ? 'retryable' : 'terminal'}) after ${Math.round(ms)} ms`));
  worker.on('canceled', ({ job }) => say(`job ${job.id} canceled: its command was stopped`));
  worker.on('leaseLost', ({ job, reason }) => say(`job ${job.id}: ${reason === 'lease-expired' ? 'lease expired while the server was away' : 'lease lost'}; its command was stopped`));
  worker.on('warn', ({ message }) => say(message));
  say(`${worker.workerId} runs ${resolved} for ${worker.types.join(', ')} (concurrency ${worker.concurrency}, lease ${worker.leaseSeconds} s)`);
  await worker.run();
  say('stopped');
  return 0;
}

export function register(program: Command, io: Io): void {
  program
    .command('work')
    .description('run a program as a worker: each claimed job runs COMMAND with its payload on stdin (see docs/workers.md)')
    .argument('<command>', 'the program to run per job (a path, or a name on PATH); put -- before it')
    .argument('[args...]', "the program's arguments")
    .option('--type <type>', 'a job type to claim (repeat, or comma-separate, for several)', (t: string, all: string[]) => [...all, ...t.split(',').filter(Boolean)], [] as string[])
    .option('--concurrency <n>', 'jobs run at once (default 1)')
    .option('--lease <seconds>', 'lease per claim (default 30); heartbeats keep it alive')
    .option('--heartbeat <seconds>', 'heartbeat interval (default lease/3)')
    .option('--timeout <seconds>', 'a job running longer is killed and failed retryably (JOB_TIMEOUT); default none')
    .option('--drain <seconds>', 'on SIGTERM, how long running jobs may finish before they are killed and failed retryably (default 25)')
    .option('--kill-grace <seconds>', 'after SIGTERM to a job, how long before SIGKILL (default 5)')
    .option('--claim-wait <seconds>', 'claim long-poll wait (default 5, at most 30)')
    .option('--worker-id <id>', 'worker id (default <hostname>-<pid>)')
    .option('--verbose', "print each job's log lines (stderr and non-report stdout) on stderr")
    .option('--url <url>', 'server (default $OKIT_URL or http://127.0.0.1:8080)')
    .option('--token <token>', 'bearer token with the worker role (default $OKIT_TOKEN)')
    .action(action(io, (command: string, args: string[], o: WorkOptions) => runWork(command, args, o, io)));
}
