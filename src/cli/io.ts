import { Command } from 'commander';
import { isOkitError } from '../errors.js';

/** What a command may touch of the outside world; tests pass their own. */
export interface Io {
  out(line: string): void;
  err(line: string): void;
  env: NodeJS.ProcessEnv;
  cwd: string;
}

export const processIo: Io = {
  out: (l) => process.stdout.write(l + '\n'),
  err: (l) => process.stderr.write(l + '\n'),
  env: process.env,
  cwd: process.cwd(),
};

/** Exit codes: 0 ok, 1 a check failed (verify, ledger check, replay), 2 usage or input error, 3 internal. */
export const EXIT = { OK: 0, CHECK_FAILED: 1, USAGE: 2, INTERNAL: 3 } as const;

/** Prints an error the way every command does and maps it to an exit code. */
export function reportError(io: Io, e: unknown): number {
  if (isOkitError(e)) {
    io.err(`okit: error ${e.code}: ${e.message}`);
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
