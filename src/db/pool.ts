import pg from 'pg';
import { isDbUnavailable } from './errors.js';

/**
 * Type parsers that keep Postgres' exact text: timestamps keep microseconds,
 * jsonb/json are not re-parsed with JSON.parse, int8/numeric stay strings.
 * Scoped to our pools (not pg's global registry) so embedding apps are unaffected.
 */
const RAW = (v: string) => v;
const RAW_OIDS = new Set([
  1184, // timestamptz
  1114, // timestamp
  1082, // date
  3802, // jsonb
  114, // json
  20, // int8
  1700, // numeric
]);
export const exactTypes = {
  getTypeParser(oid: number, format?: 'text' | 'binary') {
    if (RAW_OIDS.has(oid)) return RAW;
    return pg.types.getTypeParser(oid, format ?? 'text');
  },
};

export type Pool = pg.Pool;
export type PoolClient = pg.PoolClient;
export type Queryable = Pick<pg.Pool, 'query'> | pg.PoolClient | pg.Client;

/**
 * How long okit waits for the database. Every wait is bounded: a frozen server (a stalled
 * disk, a paused VM, SIGSTOP) accepts TCP connections and answers nothing, and a black-holed
 * network answers not even TCP. 0 turns a bound off.
 */
export interface DbTimeouts {
  /** Connecting a new client, and waiting for a free one in a pool (pg `connectionTimeoutMillis`). */
  connectTimeoutMs?: number;
  /** Server-side `statement_timeout`: a live but slow server cancels the statement (SQLSTATE 57014). */
  statementTimeoutMs?: number;
  /** Client-side bound on each query's answer (pg `query_timeout`): the one that holds when the server is frozen. */
  queryTimeoutMs?: number;
  /** Server-side `idle_in_transaction_session_timeout`: a transaction left open by a stuck client is ended. */
  idleInTransactionTimeoutMs?: number;
  /** TCP keepalive: idle time before the first probe (a peer gone from the network is noticed by the kernel). */
  keepAliveIdleMs?: number;
}

/** Every connection okit opens (CLI commands, the LISTEN connection): bounded connect, keepalive. */
export const DB_TIMEOUTS: Required<DbTimeouts> = {
  connectTimeoutMs: 5000,
  statementTimeoutMs: 0,
  queryTimeoutMs: 0,
  idleInTransactionTimeoutMs: 60_000,
  keepAliveIdleMs: 10_000,
};

/**
 * `okit serve`'s query pool: every statement is bounded too, so that a request never waits
 * on the database longer than about connect + query timeout (and a known-down database is
 * answered 503 at once, see DbHealth). The client bound is a little above the server's, so a
 * live server cancels first and the connection survives.
 */
export const SERVE_DB_TIMEOUTS: Required<DbTimeouts> = {
  connectTimeoutMs: 3000,
  statementTimeoutMs: 5000,
  queryTimeoutMs: 6000,
  idleInTransactionTimeoutMs: 30_000,
  keepAliveIdleMs: 10_000,
};

export interface PoolOptions {
  max?: number;
  applicationName?: string;
  timeouts?: DbTimeouts;
}

export function connectionConfig(url: string, applicationName = 'okit', timeouts: DbTimeouts = {}): pg.ClientConfig {
  const t = { ...DB_TIMEOUTS, ...timeouts };
  return {
    connectionString: url,
    types: exactTypes as pg.CustomTypesConfig,
    application_name: applicationName,
    // Every session speaks UTC so timestamp text is unambiguous.
    options: '-c TimeZone=UTC -c DateStyle=ISO',
    keepAlive: true,
    keepAliveInitialDelayMillis: t.keepAliveIdleMs,
    ...(t.connectTimeoutMs > 0 ? { connectionTimeoutMillis: t.connectTimeoutMs } : {}),
    ...(t.statementTimeoutMs > 0 ? { statement_timeout: t.statementTimeoutMs } : {}),
    ...(t.queryTimeoutMs > 0 ? { query_timeout: t.queryTimeoutMs } : {}),
    ...(t.idleInTransactionTimeoutMs > 0 ? { idle_in_transaction_session_timeout: t.idleInTransactionTimeoutMs } : {}),
  };
}

export function createPool(url: string, opts: PoolOptions = {}): pg.Pool {
  const pool = new pg.Pool({ ...connectionConfig(url, opts.applicationName, opts.timeouts), max: opts.max ?? 10 });
  // An idle client that loses its server (restart) must not crash the process.
  pool.on('error', () => undefined);
  return pool;
}

export function createClient(url: string, applicationName?: string, timeouts?: DbTimeouts): pg.Client {
  return new pg.Client(connectionConfig(url, applicationName, timeouts));
}

/**
 * Runs fn in one transaction; rolls back on any throw. pg-pool listens for errors only on
 * idle clients: a checked-out client whose server goes away (restart, terminate) emits an
 * `error` nobody handles, which would crash the process. So listen while it is held, and
 * destroy rather than reuse a client that errored. A client whose query timed out or whose
 * connection failed is destroyed without a ROLLBACK (which would wait as long again): the
 * server rolls back an open transaction when its connection goes.
 */
export async function withTx<T>(
  pool: pg.Pool,
  fn: (c: pg.PoolClient) => Promise<T>,
  /** SQL to run just before COMMIT, in the same round trip (e.g. a NOTIFY). */
  beforeCommit?: (c: pg.PoolClient) => string | undefined,
): Promise<T> {
  const c = await pool.connect();
  let broken: Error | undefined;
  const onError = (e: Error) => {
    broken = e;
  };
  c.on('error', onError);
  try {
    await c.query('BEGIN');
    const out = await fn(c);
    const last = beforeCommit?.(c);
    await c.query(last ? `${last}; COMMIT` : 'COMMIT');
    return out;
  } catch (e) {
    if (!broken && isDbUnavailable(e) && !fromServer(e)) broken = e as Error; // a timeout or a lost connection
    if (!broken) await c.query('ROLLBACK').catch((re: Error) => (broken = re));
    throw e;
  } finally {
    c.removeListener('error', onError);
    c.release(broken);
  }
}

/** An error the server sent (it has a SQLSTATE): the connection itself answered. */
function fromServer(e: unknown): boolean {
  const code = (e as { code?: unknown })?.code;
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code);
}
