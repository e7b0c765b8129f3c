/**
 * `okit sessions list|revoke`: a link session (no token to revoke) and a token session are
 * listed with what they signed in with; revoking by link, by id and by tenant ends them on a
 * running server within its cache time; an unused revoked link no longer signs in; bad input
 * exits 2.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runSessionsList, runSessionsRevoke } from '../../src/cli/sessions.js';
import { createLink } from '../../src/http/sessions.js';
import { captureIo, okit } from '../helpers/cli.js';
import { freshDb, type TestDb } from '../helpers/db.js';
import { startTestServer, type TestServer } from '../helpers/serve.js';

const SESSION = '/api/v1/console/session';
const JOBS = '/api/v1/orchestrator/jobs';

describe('okit sessions', () => {
  let db: TestDb;
  let t: TestServer;
  beforeAll(async () => {
    db = await freshDb();
    t = await startTestServer(db.url, db.pool, { tokenTtlMs: 300 });
  });
  afterAll(async () => {
    await t.srv.close();
    await db.drop();
  });
  const signIn = async (body: unknown) => {
    const res = await fetch(t.base + SESSION, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
    expect(res.status).toBe(201);
    return /^(okit_session=[^;]+)/.exec(res.headers.get('set-cookie')!)![1]!;
  };
  const status = async (cookie: string) => (await fetch(t.base + JOBS, { headers: { Cookie: cookie } })).status;
  const list = async (tenant: string) => {
    const io = captureIo({ ...process.env, DATABASE_URL: db.url });
    expect(await runSessionsList({ tenant, json: true }, io)).toBe(0);
    return io.lines.map((l) => JSON.parse(l) as { id: string; via: string; state: string; scope: string });
  };
  const io = () => captureIo({ ...process.env, DATABASE_URL: db.url });
  const past = () => new Promise((r) => setTimeout(r, 350)); // past the session cache (tokenTtlMs 300)

  it('lists sessions with their origin; revoke --link ends a link session (and its unused sibling link is dead too)', async () => {
    const link = await createLink(db.pool, { tenant: 'acme', scope: 'admin' });
    const viaLink = await signIn({ link: link.code });
    const viaToken = await signIn({ token: t.tokens.read });
    expect([await status(viaLink), await status(viaToken)]).toEqual([200, 200]);
    const rows = await list('acme');
    expect(rows).toHaveLength(2);
    expect(rows.map((r) => r.via)).toContain(`link:${link.id}`);
    expect(rows.filter((r) => /^token:[0-9a-f-]{36}$/.test(r.via))).toHaveLength(1);
    expect(rows.every((r) => r.state === 'live')).toBe(true);
    expect(await runSessionsRevoke({ link: link.id }, io())).toBe(0);
    await past();
    expect([await status(viaLink), await status(viaToken)]).toEqual([401, 200]);
    expect((await list('acme')).find((r) => r.via === `link:${link.id}`)!.state).toBe('ended');
    // An unused link revoked before anyone signs in with it no longer signs in.
    const unused = await createLink(db.pool, { tenant: 'acme', scope: 'read' });
    expect(await runSessionsRevoke({ link: unused.id }, io())).toBe(0);
    const r = await fetch(t.base + SESSION, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ link: unused.code }) });
    expect(r.status).toBe(401);
  });

  it('revoke --id ends one session, --tenant all of a tenant and no other tenant (through the bin)', async () => {
    const a = await signIn({ token: t.tokens.read });
    const b = await signIn({ token: t.tokens.admin });
    const theirs = await signIn({ token: t.tokens.otherRead });
    const live = (await list('acme')).filter((r) => r.state === 'live');
    const newest = live[0]!; // b, signed in last
    const r1 = await okit(['sessions', 'revoke', '--id', newest.id], { DATABASE_URL: db.url });
    expect(r1.code, r1.stderr).toBe(0);
    expect(r1.stdout).toBe('revoked 1 session(s)\n');
    await past();
    expect([await status(a), await status(b), await status(theirs)]).toEqual([200, 401, 200]);
    const r2 = await okit(['sessions', 'revoke', '--tenant', 'acme'], { DATABASE_URL: db.url });
    expect(r2.code, r2.stderr).toBe(0);
    await past();
    expect([await status(a), await status(theirs)]).toEqual([401, 200]);
    const l = await okit(['sessions', 'list', '--tenant', 'acme'], { DATABASE_URL: db.url });
    expect(l.code).toBe(0);
    expect(l.stdout.split('\n')[0]).toMatch(/^ID\s+SCOPE\s+VIA\s+CREATED\s+EXPIRES\s+STATE$/);
    expect(l.stdout).not.toMatch(/\blive\b/);
    // Nothing live left: exit 1, as tokens revoke of an unknown id.
    expect(await runSessionsRevoke({ tenant: 'acme' }, io())).toBe(1);
  });

  it('bad input exits 2: none or two selectors, a bad uuid', async () => {
    for (const args of [[], ['--id', 'x'], ['--tenant', 'acme', '--id', '00000000-0000-4000-8000-000000000000']]) {
      const r = await okit(['sessions', 'revoke', ...args], { DATABASE_URL: db.url });
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(2);
      expect(r.stderr).toMatch(/INVALID_INPUT|--id|--tenant/);
    }
  });
});
