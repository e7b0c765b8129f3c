import { Command } from 'commander';
import { isOkitError, OkitError } from '../errors.js';
import { isDbUnavailable } from '../http/errors.js';
import { terminalLine, terminalText } from '../util/terminal.js';

/** What a command may touch of the outside world; tests pass their own. */
export interface Io {
  out(line: string): void;
  err(line: string): void;
  env: NodeJS.ProcessEnv;
  cwd: string;
  /** performance.now() when the user's command started (0: the process start); unset: when the command function was called. */
  startedAt?: number;
}

// Every line reaches the terminal with its control characters escaped (util/terminal.ts).
export const processIo: Io = {
  out: (l) => process.stdout.write(terminalText(l) + '\n'),
  err: (l) => process.stderr.write(terminalText(l) + '\n'),
  env: process.env,
  cwd: process.cwd(),
  startedAt: 0,
};

/** Exit codes: 0 ok, 1 a check failed (verify, ledger check, replay), 2 usage or input error, 3 internal. */
export const EXIT = { OK: 0, CHECK_FAILED: 1, USAGE: 2, INTERNAL: 3 } as const;

// SQLSTATEs that mean "this DATABASE_URL cannot be used": bad password or role, no such database.
const PG_CONFIG_CODES = new Set(['28000', '28P01', '3D000']);

/**
 * The outside world's failures, which a user causes and can fix, as typed errors: a file that
 * cannot be read or written (Node's system errors carry `syscall` and `path`), and a database
 * that cannot be reached or logged into. Anything else stays an internal error.
 */
export function userErrorOf(e: unknown): OkitError | undefined {
  if (isOkitError(e)) return e;
  if (!e || typeof e !== 'object') return undefined;
  const err = e as { code?: unknown; syscall?: unknown; path?: unknown; message?: unknown };
  if (typeof err.syscall === 'string' && typeof err.path === 'string' && typeof err.code === 'string')
    return new OkitError('IO_ERROR', `cannot ${err.syscall} ${err.path}: ${err.code}`);
  if (isDbUnavailable(e) || (typeof err.code === 'string' && PG_CONFIG_CODES.has(err.code)))
    return new OkitError('DB_UNAVAILABLE', `cannot use the database: ${String(err.message ?? err.code)}`);
  return undefined;
}

/** Prints an error the way every command does and maps it to an exit code. */
export function reportError(io: Io, raw: unknown): number {
  const e = userErrorOf(raw) ?? raw;
  if (isOkitError(e)) {
    // The message may quote what a server or a user sent: one line, whatever it holds.
    io.err(`okit: error ${terminalLine(e.code)}: ${terminalLine(e.message)}`);
    return EXIT.USAGE;
  }
  io.err(`okit: internal error: ${(e as Error)?.stack ?? String(e)}`);
  return EXIT.INTERNAL;
}

/** Wraps a command's run(opts, io) so that commander's action sets the exit code. */
export function action<A extends unknown[]>(io: Io, fn: (...args: A) => Promise<number>): (...args: A) => Promise<void> {
  return async (...args: A) => {
    let code: number;
    try {
      code = await fn(...args);
    } catch (e) {
      code = reportError(io, e);
    }
    process.exitCode = code;
  };
}

export type Register = (program: Command, io: Io) => void;
