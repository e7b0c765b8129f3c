import { resolveDatabase, type Database } from '../db/connect.js';
import { migrate } from '../db/migrate.js';
import { createPool, type DbTimeouts, type Pool } from '../db/pool.js';
import { Ledger, type LedgerOptions } from '../ledger/ledger.js';
import type { Io } from './io.js';

export interface DbContext {
  db: Database;
  pool: Pool;
  ledger: Ledger;
}

/**
 * Opens the database (DATABASE_URL or the embedded cluster, started on demand), applies
 * pending migrations, runs fn, and always cleans up: pool closed, and an embedded cluster
 * this command started is stopped again unless `keep`.
 */
export async function withDb<T>(io: Io, fn: (ctx: DbContext) => Promise<T>, opts: { ledger?: LedgerOptions; keep?: boolean; poolMax?: number; timeouts?: DbTimeouts } = {}): Promise<T> {
  const db = await resolveDatabase({ env: io.env, cwd: io.cwd, log: (s) => io.err(`okit: ${s}`), keep: opts.keep });
  let pool: Pool | undefined;
  try {
    await migrate(db.url);
    pool = createPool(db.url, { max: opts.poolMax ?? 10, timeouts: opts.timeouts });
    return await fn({ db, pool, ledger: new Ledger(pool, opts.ledger) });
  } finally {
    await pool?.end().catch(() => undefined);
    await db.release();
  }
}
