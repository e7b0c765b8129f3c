import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadMigrations, migrate, MIGRATIONS_DIR } from '../../src/db/migrate.js';
import { okit } from '../helpers/cli.js';
import { freshDb, type TestDb } from '../helpers/db.js';
import { expectCode } from '../helpers/ledger.js';

/** A private copy of the migrations directory, to edit. */
function copyMigrations(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'okit-mig-'));
  for (const f of fs.readdirSync(MIGRATIONS_DIR)) fs.copyFileSync(path.join(MIGRATIONS_DIR, f), path.join(dir, f));
  return dir;
}

describe('migrations', () => {
  const dbs: TestDb[] = [];
  const dirs: string[] = [];
  const fresh = async () => {
    const db = await freshDb({ migrated: false });
    dbs.push(db);
    return db;
  };
  afterAll(async () => {
    await Promise.all(dbs.map((d) => d.drop()));
    for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
  });

  it('applies every file once; the second run is a no-op', async () => {
    const db = await fresh();
    const all = loadMigrations();
    const first = await migrate(db.url);
    expect(first.applied).toEqual(all.map((m) => `${String(m.version).padStart(3, '0')}_${m.name}`));
    expect(first.current).toBe(all.length);
    const { rows } = await db.pool.query('SELECT version, sha256 FROM public.okit_migrations ORDER BY version');
    expect(rows).toEqual(all.map((m) => ({ version: m.version, sha256: m.sha256 })));
    const second = await migrate(db.url);
    expect(second).toEqual({ applied: [], current: all.length });
  });

  it('concurrent migrators serialise on the advisory lock: each file applied once', async () => {
    const db = await fresh();
    const results = await Promise.all([migrate(db.url), migrate(db.url), migrate(db.url)]);
    expect(results.map((r) => r.applied.length).sort()).toEqual([0, 0, loadMigrations().length]);
  });

  it('refuses to run when an applied migration changed (MIGRATION_CHANGED), and changes nothing', async () => {
    const db = await fresh();
    const dir = copyMigrations();
    dirs.push(dir);
    await migrate(db.url, { dir });
    const file = path.join(dir, fs.readdirSync(dir).filter((f) => f.endsWith('.sql')).sort()[0]!);
    fs.appendFileSync(file, '\n-- edited after it was applied\nCREATE TABLE okit.sneaky (x int);\n');
    // A new, legitimate migration next to it must not be applied either.
    fs.writeFileSync(path.join(dir, `${String(loadMigrations(dir).length + 1).padStart(3, '0')}_later.sql`), 'CREATE TABLE okit.later (x int);');
    const e = await expectCode(() => migrate(db.url, { dir }), 'MIGRATION_CHANGED');
    expect(e.message).toContain(path.basename(file));
    const { rows } = await db.pool.query("SELECT count(*)::int AS n FROM pg_tables WHERE schemaname = 'okit' AND tablename IN ('sneaky', 'later')");
    expect(rows[0].n).toBe(0);
  });

  it('refuses a database migrated by a newer okit (a version this build does not know)', async () => {
    const db = await fresh();
    const dir = copyMigrations();
    dirs.push(dir);
    const next = `${String(loadMigrations(dir).length + 1).padStart(3, '0')}_newer.sql`;
    fs.writeFileSync(path.join(dir, next), 'CREATE TABLE okit.newer (x int);');
    await migrate(db.url, { dir });
    await expectCode(() => migrate(db.url), 'MIGRATION_CHANGED');
  });

  it('a failing migration rolls back entirely (MIGRATION_FAILED) and is not recorded', async () => {
    const db = await fresh();
    const dir = copyMigrations();
    dirs.push(dir);
    const n = loadMigrations(dir).length + 1;
    fs.writeFileSync(path.join(dir, `${String(n).padStart(3, '0')}_broken.sql`), 'CREATE TABLE okit.half (x int); SELECT no_such_function();');
    await expectCode(() => migrate(db.url, { dir }), 'MIGRATION_FAILED');
    const { rows } = await db.pool.query('SELECT max(version) AS v, (SELECT count(*)::int FROM pg_tables WHERE tablename = $1) AS half FROM public.okit_migrations', ['half']);
    expect(rows[0]).toEqual({ v: n - 1, half: 0 });
  });

  it('refuses a gap in the numbering', () => {
    const dir = copyMigrations();
    dirs.push(dir);
    fs.writeFileSync(path.join(dir, '099_far.sql'), 'SELECT 1;');
    expect(() => loadMigrations(dir)).toThrow(/gap/);
  });

  describe('okit db migrate (CLI, DATABASE_URL)', () => {
    let db: TestDb;
    beforeAll(async () => {
      db = await fresh();
    });

    it('applies, then is a no-op the second time', async () => {
      const a = await okit(['db', 'migrate'], { DATABASE_URL: db.url });
      expect(a.stderr).toBe('');
      expect(a.code).toBe(0);
      expect(a.stdout).toMatch(/^applied 001_ledger/);
      const b = await okit(['db', 'migrate'], { DATABASE_URL: db.url });
      expect(b.code).toBe(0);
      expect(b.stdout.trim()).toBe(`up to date (version ${loadMigrations().length})`);
    });

    it('refuses a changed applied migration with MIGRATION_CHANGED (exit 2)', async () => {
      // Make the database record a different checksum for 001, as if the file had been edited since.
      const c = await db.admin();
      await c.query("UPDATE public.okit_migrations SET sha256 = repeat('0', 64) WHERE version = 1");
      await c.end();
      const r = await okit(['db', 'migrate'], { DATABASE_URL: db.url });
      expect(r.code).toBe(2);
      expect(r.stderr).toContain('MIGRATION_CHANGED');
      expect(r.stderr).toContain('001_ledger.sql changed after it was applied');
    });

    it('prints the DATABASE_URL with db url', async () => {
      const r = await okit(['db', 'url'], { DATABASE_URL: db.url });
      expect(r.code).toBe(0);
      expect(r.stdout.trim()).toBe(db.url);
    });
  });
});
