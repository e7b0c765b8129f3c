import type { Command } from 'commander';
import { startServer } from '../http/server.js';
import { withDb } from './context.js';
import { action, EXIT, type Io } from './io.js';
import { OkitError } from '../errors.js';

export interface ServeOptions {
  host?: string;
  port?: string;
}

export function port(p: string | undefined): number {
  if (p === undefined) return 8080;
  if (!/^[0-9]{1,5}$/.test(p) || Number(p) > 65535) throw new OkitError('INVALID_INPUT', 'port: must be a decimal integer from 0 to 65535');
  return Number(p);
}

/** Serves until SIGTERM/SIGINT, then shuts down gracefully and returns 0. */
export async function runServe(opts: ServeOptions, io: Io, stop?: Promise<unknown>): Promise<number> {
  const p = port(opts.port);
  const stopped =
    stop ??
    new Promise<string>((resolve) => {
      process.once('SIGTERM', () => resolve('SIGTERM'));
      process.once('SIGINT', () => resolve('SIGINT'));
    });
  await withDb(
    io,
    async ({ db, pool, ledger }) => {
      const srv = await startServer({ url: db.url, pool, ledger, host: opts.host ?? '127.0.0.1', port: p, log: (l) => io.err(`okit: ${l}`) });
      io.out(`okit serve listening on ${srv.baseUrl}`);
      const why = await stopped;
      io.err(`okit: ${typeof why === 'string' ? why : 'stop'}: draining and shutting down`);
      await srv.close();
    },
    // A shared embedded cluster outlives any one server (others may be using it).
    { keep: true },
  );
  return EXIT.OK;
}

export function register(program: Command, io: Io): void {
  program
    .command('serve')
    .description('serve first signals (GET, long-poll, SSE) and the worker API over HTTP')
    .option('--host <host>', 'address to bind', '127.0.0.1')
    .option('--port <port>', 'port (0 picks a free one)', '8080')
    .action(action(io, (o: ServeOptions) => runServe(o, io)));
}
