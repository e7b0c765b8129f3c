import pg from 'pg';

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

export interface PoolOptions {
  max?: number;
  applicationName?: string;
}

export function connectionConfig(url: string, applicationName = 'okit'): pg.ClientConfig {
  return {
    connectionString: url,
    types: exactTypes as pg.CustomTypesConfig,
    application_name: applicationName,
    // Every session speaks UTC so timestamp text is unambiguous.
    options: '-c TimeZone=UTC -c DateStyle=ISO',
    keepAlive: true,
  };
}

export function createPool(url: string, opts: PoolOptions = {}): pg.Pool {
  const pool = new pg.Pool({ ...connectionConfig(url, opts.applicationName), max: opts.max ?? 10 });
  // An idle client that loses its server (restart) must not crash the process.
  pool.on('error', () => undefined);
  return pool;
}

export function createClient(url: string, applicationName?: string): pg.Client {
  return new pg.Client(connectionConfig(url, applicationName));
}

/**
 * Runs fn in one transaction; rolls back on any throw. pg-pool listens for errors only on
 * idle clients: a checked-out client whose server goes away (restart, terminate) emits an
 * `error` nobody handles, which would crash the process. So listen while it is held, and
 * destroy rather than reuse a client that errored.
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
    if (!broken) await c.query('ROLLBACK').catch(() => undefined);
    throw e;
  } finally {
    c.removeListener('error', onError);
    c.release(broken);
  }
}
