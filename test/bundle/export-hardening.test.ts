/**
 * An export must never sign what verify rejects, and never leave ledger data behind:
 * TRUNCATE refused, non-dense windows refused, interrupted and disconnected exports clean,
 * --previous verified, numbers that would not round-trip refused.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exportBundle } from '../../src/bundle/export.js';
import { verifyBundle } from '../../src/bundle/verify.js';
import { isOkitError } from '../../src/errors.js';
import { simulate } from '../../src/ledger/simulate.js';
import { freshDb, type TestDb } from '../helpers/db.js';
import { startTestServer } from '../helpers/serve.js';
import { testKey, testPub, tmp } from './fixtures.js';

const BIN = 'dist/cli/main.js';
const KEY = 'bundles/sample/INSECURE-test-signing.key';

function start(args: string[], env: Record<string, string>): { child: ChildProcess; done: Promise<{ code: number | null; signal: string | null; out: string; err: string }> } {
  const child = spawn(process.execPath, [BIN, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (err += d));
  const done = new Promise<{ code: number | null; signal: string | null; out: string; err: string }>((res) => child.on('close', (code, signal) => res({ code, signal, out, err })));
  return { child, done };
}

async function until(what: string, cond: () => Promise<boolean> | boolean, ms = 30_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('export hardening', () => {
  let db: TestDb;
  const T = 'hard';
  beforeAll(async () => {
    db = await freshDb();
    await simulate(db.pool, { seed: 5, jobs: 12, tenant: T });
  });
  afterAll(async () => db.drop());

  /** Holds an ACCESS EXCLUSIVE lock on throttle_events: an export blocks there, its jobs and history already written. */
  async function blockedExport(out: string) {
    const a = await db.admin();
    await a.query('BEGIN');
    await a.query('LOCK TABLE okit.throttle_events IN ACCESS EXCLUSIVE MODE');
    const run = start(['export', '--tenant', T, '--key', KEY, '--out', out], { DATABASE_URL: db.url });
    await until('the export to block on the lock', async () => {
      const { rows } = await db.pool.query(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`);
      return rows[0].n > 0;
    });
    const partial = readdirSync(out);
    return {
      run,
      partial,
      async release() {
        await a.query('ROLLBACK');
        await a.end();
      },
    };
  }

  it('TRUNCATE is refused on every append-only table, even for a superuser', async () => {
    const a = await db.admin();
    try {
      // Row triggers fire only on rows: give bundle_anchors one (a live ledger has none).
      await a.query(`INSERT INTO okit.bundle_anchors (tenant, job_id, n, hash) VALUES ('x', gen_random_uuid(), 1, repeat('a', 64))`);
      for (const t of ['okit.job_history', 'okit.throttle_events', 'okit.bundle_anchors']) {
        await expect(a.query(`TRUNCATE ${t} CASCADE`), t).rejects.toThrow(/TRUNCATE on .* is not allowed: the ledger is append-only/);
        await expect(a.query(`DELETE FROM ${t}`), t).rejects.toThrow(/append-only/);
        await expect(a.query(`UPDATE ${t} SET tenant = tenant`), t).rejects.toThrow(/append-only/);
      }
    } finally {
      await a.end();
    }
    const { rows } = await db.pool.query('SELECT count(*)::int AS n FROM okit.throttle_events WHERE tenant = $1', [T]);
    expect(rows[0].n).toBeGreaterThan(0);
  });

  it('refuses to sign a window whose positions are not dense, naming the first gap', async () => {
    const t2 = await freshDb();
    try {
      await simulate(t2.pool, { seed: 5, jobs: 12, tenant: T });
      const { rows } = await t2.pool.query('SELECT min(pos)::text AS p FROM okit.throttle_events WHERE tenant = $1', [T]);
      const a = await t2.admin();
      await a.query('ALTER TABLE okit.throttle_events DISABLE TRIGGER USER');
      await a.query('TRUNCATE okit.throttle_events');
      await a.end();
      const out = tmp();
      const err = await exportBundle(t2.pool, { tenant: T, key: testKey, outDir: out }).catch((e: unknown) => e);
      expect(isOkitError(err) && err.code).toBe('LEDGER_BROKEN');
      expect((err as Error).message).toContain(`positions ${rows[0].p}..`);
      expect((err as Error).message).toMatch(/are used by no line/);
      expect(readdirSync(out)).toEqual([]);
    } finally {
      await t2.drop();
    }
  });

  for (const sig of ['SIGTERM', 'SIGINT'] as const)
    it(`${sig} during an export leaves nothing in --out and exits ${sig === 'SIGINT' ? 130 : 143}`, async () => {
      const out = tmp();
      const b = await blockedExport(out);
      // While it runs, its work is in one hidden *.partial directory that no *.tar glob matches.
      expect(b.partial).toHaveLength(1);
      expect(b.partial[0]).toMatch(/^\.okit-export-\d+-[0-9a-f]+\.partial$/);
      expect(readdirSync(join(out, b.partial[0]!)).every((f) => f.endsWith('.part'))).toBe(true);
      b.run.child.kill(sig);
      await new Promise((r) => setTimeout(r, 200));
      await b.release();
      const r = await b.run.done;
      expect(r.code, r.err).toBe(sig === 'SIGINT' ? 130 : 143);
      expect(r.err).toContain(`export interrupted by ${sig}`);
      expect(readdirSync(out)).toEqual([]);
    });

  it('after a SIGKILL the partial directory is removed by the next export', async () => {
    const out = tmp();
    const b = await blockedExport(out);
    b.run.child.kill('SIGKILL');
    await b.run.done;
    await b.release();
    expect(readdirSync(out)).toEqual(b.partial);
    const r = await exportBundle(db.pool, { tenant: T, key: testKey, outDir: out });
    expect(readdirSync(out)).toEqual([r.path.split('/').pop()]);
  });

  it('a connection terminated mid-export is exit 2 DB_UNAVAILABLE, no crash, nothing left', async () => {
    const out = tmp();
    const b = await blockedExport(out);
    await db.pool.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`);
    const r = await b.run.done;
    await b.release();
    expect(r.code, r.err).toBe(2);
    expect(r.err).toMatch(/okit: error DB_UNAVAILABLE: the database connection was lost during the export/);
    expect(r.err).not.toMatch(/Unhandled|internal error|\n\s+at /);
    expect(readdirSync(out)).toEqual([]);
  });

  it('export --previous verifies the previous bundle: a truncated one is refused, a valid one chains', async () => {
    const out = tmp();
    const first = await exportBundle(db.pool, { tenant: T, key: testKey, to: '2025-12-04T12:00:06.000000Z', outDir: out });
    const cut = join(tmp(), 'cut.tar');
    writeFileSync(cut, readFileSync(first.path).subarray(0, 1536));
    const out2 = tmp();
    const bad = start(['export', '--tenant', T, '--key', KEY, '--previous', cut, '--out', out2], { DATABASE_URL: db.url });
    const r = await bad.done;
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/PREVIOUS_INVALID: --previous .* does not verify \(TAR_/);
    expect(readdirSync(out2)).toEqual([]);
    const ok = await start(['export', '--tenant', T, '--key', KEY, '--previous', first.path, '--out', out2], { DATABASE_URL: db.url }).done;
    expect(ok.code, ok.err).toBe(0);
    const v = await verifyBundle(ok.out.split('\n')[0]!, { pubkeys: testPub, previous: [first.path] });
    expect(v.problems).toEqual([]);
    // Another key's previous bundle needs that key as --pubkey.
    const other = await start(['export', '--tenant', T, '--key', KEY, '--previous', first.path, '--pubkey', 'bundles/sample/INSECURE-test-signing.pub', '--out', tmp()], { DATABASE_URL: db.url }).done;
    expect(other.code, other.err).toBe(0);
  });

  it('numbers: 1e300 over HTTP is accepted and travels exactly; 12345678901234567890 is refused at the door; an inexact jsonb is not exported', async () => {
    const t3 = await freshDb();
    const srv = await startTestServer(t3.url, t3.pool, {}, 'num');
    try {
      const A = '/api/v1/orchestrator';
      const ok = await srv.post(`${A}/jobs`, srv.tokens.worker, '{"type":"scan","payload":{"n":1e300,"big":9007199254740992,"e":1e+21}}');
      expect(ok.status, await ok.clone().text()).toBe(201);
      const bad = await srv.post(`${A}/jobs`, srv.tokens.worker, '{"type":"scan","payload":{"n":12345678901234567890}}');
      expect(bad.status).toBe(400);
      const body = (await bad.json()) as { error: { code: string; message: string } };
      expect(body.error.code).toBe('INVALID_INPUT');
      expect(body.error.message).toContain('not exactly representable as a double: 12345678901234567890 would be read as 12345678901234567000');
      const r = await exportBundle(t3.pool, { tenant: 'num', key: testKey, outDir: tmp() });
      const v = await verifyBundle(r.path, { pubkeys: testPub, collect: true });
      expect(v.problems).toEqual([]);
      expect(v.data!.jobs[0]!.payload).toEqual({ n: 1e300, big: 9007199254740992, e: 1e21 });
      // Written by SQL, not through okit: a number the bundle could not carry exactly.
      const a = await t3.admin();
      await a.query('ALTER TABLE okit.jobs DISABLE TRIGGER USER');
      await a.query(`UPDATE okit.jobs SET payload = '{"n": 12345678901234567890}'`);
      await a.end();
      const out = tmp();
      const err = await exportBundle(t3.pool, { tenant: 'num', key: testKey, outDir: out }).catch((e: unknown) => e);
      expect(isOkitError(err) && err.code).toBe('NOT_EXPORTABLE');
      expect((err as Error).message).toMatch(/payload: not exactly representable as a double: 12345678901234567890/);
      expect(readdirSync(out)).toEqual([]);
    } finally {
      await srv.srv.close();
      await t3.drop();
    }
  });
});
