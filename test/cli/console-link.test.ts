/**
 * `okit console-link` as a user runs it (the built bin against a test database, then the link
 * against a server on that database): one URL, its code works once, its TTL holds, bad input
 * exits 2. Also `run(opts, io)` directly.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runConsoleLink } from '../../src/cli/console-link.js';
import { captureIo, okit } from '../helpers/cli.js';
import { freshDb, type TestDb } from '../helpers/db.js';
import { startTestServer, type TestServer } from '../helpers/serve.js';

const SESSION = '/api/v1/console/session';

describe('okit console-link', () => {
  let db: TestDb;
  let t: TestServer;
  beforeAll(async () => {
    db = await freshDb();
    t = await startTestServer(db.url, db.pool);
  });
  afterAll(async () => {
    await t.srv.close();
    await db.drop();
  });
  const signIn = (link: string) => fetch(t.base + SESSION, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ link }) });

  it('prints one URL whose code signs in once, with the scope asked for', async () => {
    const r = await okit(['console-link', '--tenant', 'acme', '--scope', 'admin', '--base-url', t.base], { DATABASE_URL: db.url });
    expect(r.code, r.stderr).toBe(0);
    const m = new RegExp(`^${t.base.replace(/[.]/g, '\\.')}/#/signin\\?link=(okl_[A-Za-z0-9_-]{43})\\n$`).exec(r.stdout);
    expect(m, r.stdout).not.toBeNull();
    expect(r.stderr).toMatch(/tenant acme, scope admin; it works once, until \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z/);
    const first = await signIn(m![1]!);
    expect(first.status).toBe(201);
    expect(((await first.json()) as { session: { tenant: string; scope: string } }).session).toMatchObject({ tenant: 'acme', scope: 'admin' });
    const second = await signIn(m![1]!);
    expect(second.status).toBe(401);
    expect(((await second.json()) as { error: { code: string } }).error.code).toBe('LINK_USED');
    // Only the hash is in the database.
    const { rows } = await db.pool.query('SELECT code_sha256 FROM okit.console_links');
    expect(JSON.stringify(rows)).not.toContain(m![1]!.slice(4));
  });

  it('run(opts, io): --ttl sets the expiry; the default base URL is $OKIT_URL', async () => {
    const io = captureIo({ ...process.env, DATABASE_URL: db.url, OKIT_URL: 'https://okit.example:8443' });
    expect(await runConsoleLink({ tenant: 'acme', scope: 'read', ttl: '1s' }, io)).toBe(0);
    expect(io.lines).toHaveLength(1);
    const code = /^https:\/\/okit\.example:8443\/#\/signin\?link=(okl_\S+)$/.exec(io.lines[0]!)![1]!;
    await new Promise((r) => setTimeout(r, 1100));
    const r = await signIn(code);
    expect(r.status).toBe(401);
    expect(((await r.json()) as { error: { code: string } }).error.code).toBe('LINK_EXPIRED');
  });

  it('bad input is a typed error, exit 2, nothing stored', async () => {
    const before = (await db.pool.query('SELECT count(*)::int AS n FROM okit.console_links')).rows[0].n;
    for (const [args, field] of [
      [['--tenant', 'acme', '--scope', 'worker'], 'scope'],
      [['--tenant', 'acme', '--scope', 'read', '--ttl', '2d'], '--ttl'],
      [['--tenant', 'acme', '--scope', 'read', '--ttl', 'soon'], '--ttl'],
      [['--tenant', 'acme', '--scope', 'read', '--base-url', 'ftp://x'], '--base-url'],
      [['--tenant', 'acme', '--scope', 'read', '--base-url', 'http://x/path?q'], '--base-url'],
      [['--tenant', 'bad tenant!', '--scope', 'read'], 'tenant'],
    ] as const) {
      const r = await okit(['console-link', ...args], { DATABASE_URL: db.url });
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(2);
      expect(r.stderr).toContain(field);
      expect(r.stdout).toBe('');
    }
    expect((await db.pool.query('SELECT count(*)::int AS n FROM okit.console_links')).rows[0].n).toBe(before);
  });
});
