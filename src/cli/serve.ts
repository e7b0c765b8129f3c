import type { Command } from 'commander';
import { SERVE_DB_TIMEOUTS } from '../db/pool.js';
import { defaultLimits, type ServerLimits } from '../http/limits.js';
import { startServer } from '../http/server.js';
import { parseMetricsListen } from '../metrics/listen.js';
import { parseDuration } from '../util/duration.js';
import { parseStallAfter } from '../ledger/stalls.js';
import { withDb } from './context.js';
import { action, EXIT, type Io } from './io.js';
import { OkitError } from '../errors.js';

export interface ServeOptions {
  host?: string;
  port?: string;
  maxConnections?: string;
  maxConnectionsPerIp?: string;
  /** commander's --no-telemetry sets this false. */
  telemetry?: boolean;
  telemetryRetention?: string;
  stallAfter?: string;
  metricsListen?: string;
  /** Console sessions' lifetime (default 12h). */
  sessionTtl?: string;
  /** Mark the session cookie Secure over http too (TLS ends in a proxy in front). */
  secureCookies?: boolean;
  /** Open multiplexed streams server-wide / per console session or token. */
  maxStreams?: string;
  maxStreamsPerSession?: string;
}

export function port(p: string | undefined): number {
  if (p === undefined) return 8080;
  if (!/^[0-9]{1,5}$/.test(p) || Number(p) > 65535) throw new OkitError('INVALID_INPUT', 'port: must be a decimal integer from 0 to 65535');
  return Number(p);
}

function count(v: string | undefined, flag: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!/^[0-9]+$/.test(v) || !Number.isSafeInteger(n) || n < 1) throw new OkitError('INVALID_INPUT', `${flag}: must be a whole number from 1`);
  return n;
}

/** Connection caps from the command line over the defaults (the per-address cap never above the total). */
export function serveLimits(opts: ServeOptions): ServerLimits {
  const d = defaultLimits();
  const maxConnections = count(opts.maxConnections, '--max-connections') ?? d.maxConnections;
  const perIp = count(opts.maxConnectionsPerIp, '--max-connections-per-ip') ?? Math.min(d.maxConnectionsPerIp, maxConnections);
  return { ...d, maxConnections, maxConnectionsPerIp: Math.min(perIp, maxConnections) };
}

/** Serves until SIGTERM/SIGINT, then shuts down gracefully and returns 0. */
export async function runServe(opts: ServeOptions, io: Io, stop?: Promise<unknown>): Promise<number> {
  const p = port(opts.port);
  const limits = serveLimits(opts);
  const retention = opts.telemetryRetention === undefined ? undefined : parseDuration(opts.telemetryRetention, '--telemetry-retention');
  const stallAfter = opts.stallAfter === undefined ? undefined : parseStallAfter(opts.stallAfter);
  const metricsListen = opts.metricsListen === undefined ? undefined : parseMetricsListen(opts.metricsListen);
  const maxStreams = count(opts.maxStreams, '--max-streams');
  const streamsPerSession = count(opts.maxStreamsPerSession, '--max-streams-per-session');
  const sessionTtl = opts.sessionTtl === undefined ? undefined : parseDuration(opts.sessionTtl, '--session-ttl');
  if (sessionTtl !== undefined && sessionTtl > 30 * 86_400) throw new OkitError('INVALID_INPUT', '--session-ttl: at most 30d');
  const stopped =
    stop ??
    new Promise<string>((resolve) => {
      process.once('SIGTERM', () => resolve('SIGTERM'));
      process.once('SIGINT', () => resolve('SIGINT'));
    });
  await withDb(
    io,
    async ({ db, pool, ledger }) => {
      const srv = await startServer({
        url: db.url,
        pool,
        ledger,
        host: opts.host ?? '127.0.0.1',
        port: p,
        limits,
        log: (l) => io.err(`okit: ${l}`),
        telemetry: opts.telemetry !== false,
        telemetryRetentionSeconds: retention,
        metricsListen,
        sessionTtlSeconds: sessionTtl,
        secureCookies: opts.secureCookies === true,
        maxStreams,
        maxStreamsPerPrincipal: streamsPerSession,
      });
      io.out(`okit serve listening on ${srv.baseUrl}`);
      if (srv.metricsUrl) io.out(`okit metrics on ${srv.metricsUrl}`);
      const why = await stopped;
      io.err(`okit: ${typeof why === 'string' ? why : 'stop'}: draining and shutting down`);
      await srv.close();
    },
    // A shared embedded cluster outlives any one server (others may be using it). Every
    // query of the server's pool is bounded (SERVE_DB_TIMEOUTS).
    { keep: true, timeouts: SERVE_DB_TIMEOUTS, ...(stallAfter ? { ledger: { stallAfter } } : {}) },
  );
  return EXIT.OK;
}

export function register(program: Command, io: Io): void {
  program
    .command('serve')
    .description('serve first signals (GET, long-poll, SSE), the worker API and the console over HTTP')
    .option('--host <host>', 'address to bind', '127.0.0.1')
    .option('--port <port>', 'port (0 picks a free one)', '8080')
    .option('--max-connections <n>', 'open connections in all (default: the open-files limit minus 128, at most 20000)')
    .option('--max-connections-per-ip <n>', 'open connections per client address, IPv6 per /64 (default: 1000; raise it behind a reverse proxy)')
    .option('--no-telemetry', 'record no time-to-first-signal telemetry (no telemetry route; /metrics still serves the rest)')
    .option('--telemetry-retention <duration>', 'delete telemetry older than this (e.g. 90d) at start and hourly; history is never pruned')
    .option('--stall-after <durations>', 'mark a running job stalled after this long without progress: a default and per type, e.g. 2m,scan=30s,build=10m (default 60s)')
    .option('--session-ttl <duration>', 'how long a console session lives (default 12h, at most 30d)')
    .option('--secure-cookies', 'mark the console session cookie Secure over http too (TLS ends in a proxy in front of okit)')
    .option('--max-streams <n>', 'open multiplexed streams in all (default 200; past it 429 TOO_MANY_STREAMS)')
    .option('--max-streams-per-session <n>', 'open multiplexed streams per console session or bearer token (default 4)')
    .option('--metrics-listen <host:port>', 'also serve GET /metrics without a token on this loopback address (e.g. 127.0.0.1:9464)')
    .action(action(io, (o: ServeOptions) => runServe(o, io)));
}
