/**
 * Forward-only migrations: src/db/migrations/NNN_name.sql, applied in order, each in its own
 * transaction, under an advisory lock so concurrent starters do not race. Each applied file's
 * sha256 is recorded; a file that changed after being applied stops everything.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { OkitError } from '../errors.js';
import { sha256Hex } from '../util/hash.js';
import { createClient } from './pool.js';

export interface Migration {
  version: number;
  name: string;
  sql: string;
  sha256: string;
}

export const MIGRATIONS_DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), 'migrations');
const LOCK_KEY = 0x6f6b6974; // 'okit'

export function loadMigrations(dir = MIGRATIONS_DIR): Migration[] {
  const files = fs.readdirSync(dir).filter((f) => /^\d{3}_[a-z0-9_]+\.sql$/.test(f)).sort();
  return files.map((f, i) => {
    const version = Number(f.slice(0, 3));
    if (version !== i + 1) throw new OkitError('MIGRATION_FAILED', `migration numbering has a gap at ${f}`);
    const sql = fs.readFileSync(path.join(dir, f), 'utf8');
    return { version, name: f.slice(4, -4), sql, sha256: sha256Hex(sql) };
  });
}

export interface MigrateResult {
  applied: string[];
  current: number;
}

export async function migrate(url: string, opts: { dir?: string } = {}): Promise<MigrateResult> {
  const migrations = loadMigrations(opts.dir);
  const c = createClient(url, 'okit-migrate');
  await c.connect();
  try {
    await c.query('SELECT pg_advisory_lock($1)', [LOCK_KEY]);
    await c.query(`CREATE TABLE IF NOT EXISTS public.okit_migrations (
      version integer PRIMARY KEY, name text NOT NULL, sha256 text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`);
    const { rows } = await c.query<{ version: number; name: string; sha256: string }>(
      'SELECT version, name, sha256 FROM public.okit_migrations ORDER BY version',
    );
    const known = new Map(rows.map((r) => [r.version, r]));
    for (const r of rows) {
      const m = migrations.find((x) => x.version === r.version);
      if (!m) throw new OkitError('MIGRATION_CHANGED', `database has migration ${r.version} (${r.name}) that this okit does not know: it is newer than this build`);
      if (m.sha256 !== r.sha256)
        throw new OkitError('MIGRATION_CHANGED', `migration ${String(m.version).padStart(3, '0')}_${m.name}.sql changed after it was applied (recorded sha256 ${r.sha256.slice(0, 12)}…, file ${m.sha256.slice(0, 12)}…); add a new migration instead of editing an applied one`);
    }
    const applied: string[] = [];
    for (const m of migrations) {
      if (known.has(m.version)) continue;
      await applyOne(c, m);
      applied.push(`${String(m.version).padStart(3, '0')}_${m.name}`);
    }
    return { applied, current: migrations.length ? migrations[migrations.length - 1]!.version : 0 };
  } finally {
    await c.query('SELECT pg_advisory_unlock($1)', [LOCK_KEY]).catch(() => undefined);
    await c.end();
  }
}

async function applyOne(c: pg.Client, m: Migration): Promise<void> {
  try {
    await c.query('BEGIN');
    await c.query(m.sql);
    await c.query('INSERT INTO public.okit_migrations (version, name, sha256) VALUES ($1, $2, $3)', [m.version, m.name, m.sha256]);
    await c.query('COMMIT');
  } catch (e) {
    await c.query('ROLLBACK').catch(() => undefined);
    throw new OkitError('MIGRATION_FAILED', `migration ${m.version} (${m.name}) failed: ${(e as Error).message}`);
  }
}
