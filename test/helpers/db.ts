import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { inject } from 'vitest';
import { createPool, type Pool } from '../../src/db/pool.js';

export interface TestDb {
  url: string;
  name: string;
  pool: Pool;
  /** A superuser-ish client on the same database, for tampering tests. */
  admin(): Promise<pg.Client>;
  drop(): Promise<void>;
}

export function adminUrl(): string {
  return inject('pgAdminUrl');
}

function urlFor(db: string): string {
  const u = new URL(adminUrl());
  u.pathname = '/' + db;
  return u.toString();
}

/** A fresh, migrated database cloned from the template. */
export async function freshDb(opts: { migrated?: boolean } = {}): Promise<TestDb> {
  const name = 'okit_t_' + randomBytes(6).toString('hex');
  const c = new pg.Client({ connectionString: adminUrl() });
  await c.connect();
  await c.query(opts.migrated === false ? `CREATE DATABASE ${name}` : `CREATE DATABASE ${name} TEMPLATE ${inject('pgTemplate')}`);
  // Tests need no durability across a crash: not waiting for the WAL flush at each commit
  // makes commit-heavy tests (the simulation) several times faster. Semantics are unchanged.
  await c.query(`ALTER DATABASE ${name} SET synchronous_commit = off`);
  await c.end();
  const url = urlFor(name);
  const pool = createPool(url, { max: 8 });
  return {
    url,
    name,
    pool,
    async admin() {
      const a = new pg.Client({ connectionString: url });
      await a.connect();
      return a;
    },
    async drop() {
      await pool.end().catch(() => undefined);
      const d = new pg.Client({ connectionString: adminUrl() });
      await d.connect();
      await d.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await d.end();
    },
  };
}
