/**
 * Console sign-in over HTTP (issue 16): a token or a one-time link exchanged for a cookie
 * session; cookie auth on the existing routes; scope and CSRF on state changes; cross-site
 * refusals; logout; a revoked token ending its sessions; expiry; sessions kept across a restart.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer } from '../../src/http/server.js';
import { ConsoleSessions, createLink, MAX_SESSIONS_PER_TOKEN, pruneSessions } from '../../src/http/sessions.js';
import { systemClock } from '../../src/util/clock.js';
import { createToken, revokeToken, TokenAuth } from '../../src/http/tokens.js';
import { Ledger } from '../../src/ledger/ledger.js';
import { freshDb, type TestDb } from '../helpers/db.js';
import { startTestServer, type TestServer } from '../helpers/serve.js';
import { startChildServer } from '../helpers/child-server.js';

const API = '/api/v1/orchestrator';
const SESSION = '/api/v1/console/session';

interface Signed {
  cookie: string;
  csrf: string;
  body: { session: { tenant: string; scope: string; csrf_token: string; expires_at: string } };
  setCookie: string;
}

describe('console sessions', () => {
  let db: TestDb;
  let t: TestServer;
  beforeAll(async () => {
    db = await freshDb();
    t = await startTestServer(db.url, db.pool, { fallbackPollMs: 200, tokenTtlMs: 300 });
  });
  afterAll(async () => {
    await t.srv.close();
    await db.drop();
  });

  const post = (base: string, path: string, body: unknown, headers: Record<string, string> = {}, method = 'POST') =>
    fetch(base + path, { method, headers: { 'Content-Type': 'application/json', ...headers }, body: body === undefined ? undefined : JSON.stringify(body) });

  async function signIn(body: unknown, base = t.base): Promise<Signed> {
    const res = await post(base, SESSION, body);
    expect(res.status, await res.clone().text()).toBe(201);
    const setCookie = res.headers.get('set-cookie')!;
    const m = /^okit_session=(oks_[A-Za-z0-9_-]{43});/.exec(setCookie);
    expect(m).not.toBeNull();
    const b = (await res.json()) as Signed['body'];
    return { cookie: `okit_session=${m![1]}`, csrf: b.session.csrf_token, body: b, setCookie };
  }
  const withCookie = (s: Signed, extra: Record<string, string> = {}) => ({ Cookie: s.cookie, ...extra });
  const enqueue = async () => (await t.ledger.enqueue('acme', { type: 'console-test', payload: {} })).job.id;
  const code = async (res: Response) => ((await res.json()) as { error: { code: string } }).error.code;

  it('signs in with a token: an HttpOnly SameSite=Strict cookie with an expiry, and the cookie reads the API', async () => {
    const s = await signIn({ token: t.tokens.read });
    expect(s.setCookie).toMatch(/; HttpOnly; SameSite=Strict; Path=\/; Max-Age=43200$/); // 12 h, no Secure over http
    expect(s.body.session).toMatchObject({ tenant: 'acme', scope: 'read' });
    expect(s.csrf).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(s.body.session.expires_at).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
    const id = await enqueue();
    const job = await t.get(`${API}/jobs/${id}`, null, withCookie(s));
    expect(job.status).toBe(200);
    expect(((await job.json()) as { job: { id: string } }).job.id).toBe(id);
    expect((await t.get(`${API}/jobs/${id}/first-signal`, null, withCookie(s))).status).toBe(200);
    const again = await t.get(SESSION, null, withCookie(s));
    expect(again.status).toBe(200);
    expect(await again.json()).toEqual(s.body);
    // Bearer tokens keep working, and win over a cookie.
    expect((await t.get(`${API}/jobs/${id}`, t.tokens.read)).status).toBe(200);
  });

  it('refuses a bad token, a worker token, and a body with neither or both', async () => {
    const bad = await post(t.base, SESSION, { token: 'okit_' + 'x'.repeat(43) });
    expect(bad.status).toBe(401);
    expect(await code(bad)).toBe('UNAUTHENTICATED');
    const worker = await post(t.base, SESSION, { token: t.tokens.worker });
    expect(worker.status).toBe(403);
    for (const body of [{}, { token: t.tokens.read, link: 'x' }]) {
      const r = await post(t.base, SESSION, body);
      expect(r.status).toBe(400);
      expect(await code(r)).toBe('INVALID_INPUT');
    }
  });

  it('signs in by a one-time link once; the second use is refused; an expired link is refused', async () => {
    const link = await createLink(db.pool, { tenant: 'acme', scope: 'admin', ttlSeconds: 60 });
    const s = await signIn({ link: link.code });
    expect(s.body.session).toMatchObject({ tenant: 'acme', scope: 'admin' });
    const twice = await post(t.base, SESSION, { link: link.code });
    expect(twice.status).toBe(401);
    expect(await code(twice)).toBe('LINK_USED');
    // Two racing uses of a fresh link: exactly one wins (one UPDATE … WHERE used_at IS NULL).
    const fresh = await createLink(db.pool, { tenant: 'acme', scope: 'read' });
    const race = await Promise.all(Array.from({ length: 6 }, () => post(t.base, SESSION, { link: fresh.code })));
    expect(race.map((r) => r.status).sort()).toEqual([201, 401, 401, 401, 401, 401]);
    const old = await createLink(db.pool, { tenant: 'acme', scope: 'read' });
    await db.pool.query("UPDATE okit.console_links SET created_at = created_at - interval '1 hour', expires_at = now() - interval '1 second' WHERE id = $1", [old.id]);
    const expired = await post(t.base, SESSION, { link: old.code });
    expect(expired.status).toBe(401);
    expect(await code(expired)).toBe('LINK_EXPIRED');
    const unknown = await post(t.base, SESSION, { link: 'okl_' + 'A'.repeat(43) });
    expect(await code(unknown)).toBe('UNAUTHENTICATED');
    // The code itself is not stored, only its sha256.
    const { rows } = await db.pool.query('SELECT code_sha256 FROM okit.console_links WHERE id = $1', [link.id]);
    expect(rows[0].code_sha256).not.toContain(link.code.slice(4));
  });

  it('a forged or expired cookie is 401', async () => {
    const forged = await t.get(`${API}/jobs`, null, { Cookie: 'okit_session=oks_' + 'B'.repeat(43) });
    expect(forged.status).toBe(401);
    expect(await code(forged)).toBe('SESSION_INVALID');
    const garbage = await t.get(SESSION, null, { Cookie: 'okit_session=<script>' });
    expect(await code(garbage)).toBe('SESSION_INVALID');
    const s = await signIn({ token: t.tokens.read });
    await db.pool.query("UPDATE okit.console_sessions SET created_at = created_at - interval '13 hours', expires_at = now() - interval '1 second' WHERE csrf_token = $1", [s.csrf]);
    await new Promise((r) => setTimeout(r, 350)); // past the lookup cache (tokenTtlMs 300)
    const expired = await t.get(`${API}/jobs`, null, withCookie(s));
    expect(expired.status).toBe(401);
    expect(await code(expired)).toBe('SESSION_EXPIRED');
    expect(await code(await t.get(SESSION, null, withCookie(s)))).toBe('SESSION_EXPIRED');
    // No cookie at all: the usual bearer 401.
    expect(await code(await t.get(`${API}/jobs`, null))).toBe('UNAUTHORIZED');
    expect(await code(await t.get(SESSION, null))).toBe('SESSION_INVALID');
  });

  it('a tossed okit_session cookie sent first (garbage or a forged one) does not hide the valid one, for reads, writes and logout', async () => {
    const s = await signIn({ token: t.tokens.admin });
    const tossed = `okit_session=<garbage>; okit_session=oks_${'C'.repeat(43)}; ${s.cookie}`;
    expect((await t.get(`${API}/jobs`, null, { Cookie: tossed })).status).toBe(200);
    const me = await t.get(SESSION, null, { Cookie: tossed });
    expect(me.status).toBe(200);
    expect(((await me.json()) as Signed['body']).session.csrf_token).toBe(s.csrf);
    const id = await enqueue();
    const cancel = await post(t.base, `${API}/jobs/${id}/cancel`, {}, { Cookie: tossed, 'X-CSRF-Token': s.csrf });
    expect(cancel.status, await cancel.clone().text()).toBeLessThan(300);
    expect((await post(t.base, SESSION, undefined, { Cookie: tossed, 'X-CSRF-Token': s.csrf }, 'DELETE')).status).toBe(204);
    await new Promise((r) => setTimeout(r, 350));
    expect(await code(await t.get(`${API}/jobs`, null, { Cookie: tossed }))).toBe('SESSION_INVALID');
  });

  it(`one token holds at most ${MAX_SESSIONS_PER_TOKEN} live sessions: a new sign-in past it ends the oldest`, async () => {
    const { token, id } = await createToken(db.pool, { tenant: 'acme', scope: 'read' });
    const first = await signIn({ token });
    const second = await signIn({ token });
    for (let i = 2; i < MAX_SESSIONS_PER_TOKEN; i++) await signIn({ token });
    const live = async () => (await db.pool.query('SELECT count(*)::int AS n FROM okit.console_sessions WHERE token_id = $1 AND revoked_at IS NULL', [id])).rows[0].n;
    expect(await live()).toBe(MAX_SESSIONS_PER_TOKEN);
    const newest = await signIn({ token });
    expect(await live()).toBe(MAX_SESSIONS_PER_TOKEN);
    await new Promise((r) => setTimeout(r, 350)); // past the lookup cache
    expect(await code(await t.get(`${API}/jobs`, null, withCookie(first)))).toBe('SESSION_INVALID');
    for (const s of [second, newest]) expect((await t.get(`${API}/jobs`, null, withCookie(s))).status).toBe(200);
  });

  it('a full session cache drops its oldest entries, not all of them', async () => {
    const { token } = await createToken(db.pool, { tenant: 'acme', scope: 'read' });
    const cs = new ConsoleSessions(db.pool, new TokenAuth(db.pool, 60_000), systemClock, { cacheTtlMs: 60_000, cacheEntries: 2 });
    const [a, b, c] = [await cs.signIn({ token }), await cs.signIn({ token }), await cs.signIn({ token })];
    for (const x of [a, b, c]) await cs.lookup(x.cookieValue); // a is evicted when c comes in
    await db.pool.query('UPDATE okit.console_sessions SET revoked_at = now() WHERE id = ANY($1::uuid[])', [[a, b, c].map((x) => x.principal.sessionId)]);
    // b and c are still served from the cache (within its TTL); a was dropped, so its lookup sees the revocation.
    expect((await cs.lookup(c.cookieValue)).sessionId).toBe(c.principal.sessionId);
    expect((await cs.lookup(b.cookieValue)).sessionId).toBe(b.principal.sessionId);
    await expect(cs.lookup(a.cookieValue)).rejects.toMatchObject({ code: 'SESSION_INVALID' });
  });

  it('a read session cannot cancel (403); an admin session can with its CSRF token, not without or with another', async () => {
    const read = await signIn({ token: t.tokens.read });
    const admin = await signIn({ token: t.tokens.admin });
    const id = await enqueue();
    const cancel = (h: Record<string, string>) => t.post(`${API}/jobs/${id}/cancel`, null, { reason: 'console' }, h);
    const r1 = await cancel(withCookie(read, { 'X-CSRF-Token': read.csrf }));
    expect(r1.status).toBe(403);
    expect(await code(r1)).toBe('FORBIDDEN');
    const noCsrf = await cancel(withCookie(admin));
    expect(noCsrf.status).toBe(403);
    expect(await code(noCsrf)).toBe('CSRF_REJECTED');
    const wrong = await cancel(withCookie(admin, { 'X-CSRF-Token': read.csrf }));
    expect(await code(wrong)).toBe('CSRF_REJECTED');
    expect((await t.ledger.getJob('acme', id)).state).toBe('queued');
    // Same host over https (TLS ended in a proxy) is this site too.
    const ok = await cancel(withCookie(admin, { 'X-CSRF-Token': admin.csrf, Origin: t.base.replace('http:', 'https:'), 'Sec-Fetch-Site': 'same-origin' }));
    expect(ok.status, await ok.clone().text()).toBe(200);
    expect((await t.ledger.getJob('acme', id)).state).toBe('canceled');
    // The ledger records the token behind the session as the actor.
    const h = await t.ledger.history('acme', id);
    expect(JSON.stringify(h.at(-1)!.data)).toMatch(/"actor":"token:[0-9a-f-]{36}"/);
  });

  it('a cross-site form POST is refused, cookie or not, CSRF header or not', async () => {
    const admin = await signIn({ token: t.tokens.admin });
    const id = await enqueue();
    const form = (headers: Record<string, string>) =>
      fetch(`${t.base}${API}/jobs/${id}/cancel`, { method: 'POST', headers: { 'Content-Type': 'application/x-www-form-urlencoded', ...headers }, body: 'reason=pwned' });
    for (const h of [
      { Cookie: admin.cookie, Origin: 'https://evil.example' },
      { Cookie: admin.cookie, Origin: 'https://evil.example', 'Sec-Fetch-Site': 'cross-site' },
      { Cookie: admin.cookie, 'Sec-Fetch-Site': 'cross-site', 'X-CSRF-Token': admin.csrf },
      { Cookie: admin.cookie, Origin: 'null', 'X-CSRF-Token': admin.csrf },
      { Cookie: admin.cookie, Origin: t.base.replace(/:(\d+)$/, ':1'), 'X-CSRF-Token': admin.csrf }, // another port: another origin
    ]) {
      const r = await form(h);
      expect(r.status).toBe(403);
      expect(await code(r)).toBe('CSRF_REJECTED');
    }
    // Login CSRF: another site cannot sign the browser in either.
    const login = await post(t.base, SESSION, { token: t.tokens.admin }, { Origin: 'https://evil.example' });
    expect(await code(login)).toBe('CSRF_REJECTED');
    expect((await t.ledger.getJob('acme', id)).state).toBe('queued');
  });

  it('logout ends the session (CSRF required) and clears the cookie', async () => {
    const s = await signIn({ token: t.tokens.read });
    const noCsrf = await fetch(t.base + SESSION, { method: 'DELETE', headers: withCookie(s) });
    expect(await code(noCsrf)).toBe('CSRF_REJECTED');
    const out = await fetch(t.base + SESSION, { method: 'DELETE', headers: withCookie(s, { 'X-CSRF-Token': s.csrf }) });
    expect(out.status).toBe(204);
    expect(out.headers.get('set-cookie')).toMatch(/^okit_session=; HttpOnly; SameSite=Strict; Path=\/; Max-Age=0$/);
    const after = await t.get(`${API}/jobs`, null, withCookie(s));
    expect(after.status).toBe(401);
    expect(await code(after)).toBe('SESSION_INVALID');
    // Logging out of a session already gone just clears the cookie.
    expect((await fetch(t.base + SESSION, { method: 'DELETE', headers: withCookie(s) })).status).toBe(204);
  });

  it('revoking the token ends its sessions within the token cache time', async () => {
    const { rows } = await db.pool.query("SELECT id FROM okit.api_tokens WHERE tenant = 'other' AND scope = 'read'");
    const s = await signIn({ token: t.tokens.otherRead });
    expect((await t.get(`${API}/jobs`, null, withCookie(s))).status).toBe(200);
    expect(await revokeToken(db.pool, String(rows[0].id))).toBe(true);
    await new Promise((r) => setTimeout(r, 350)); // tokenTtlMs is 300 here
    const r = await t.get(`${API}/jobs`, null, withCookie(s));
    expect(r.status).toBe(401);
    expect(await code(r)).toBe('SESSION_INVALID');
    // A link session does not depend on any token.
    const link = await createLink(db.pool, { tenant: 'other', scope: 'read' });
    const ls = await signIn({ link: link.code });
    expect((await t.get(`${API}/jobs`, null, withCookie(ls))).status).toBe(200);
  });

  it('a token revoked a moment ago cannot sign in, even while the token cache still trusts it', async () => {
    const { token, id } = await createToken(db.pool, { tenant: 'acme', scope: 'admin' });
    const t2 = await startTestServer(db.url, db.pool, { tokenTtlMs: 60_000 });
    try {
      expect((await t2.get(`${API}/jobs`, token)).status).toBe(200); // now cached for a minute
      expect(await revokeToken(db.pool, id)).toBe(true);
      expect((await t2.get(`${API}/jobs`, token)).status).toBe(200); // the bearer cache, as documented (tokenTtlMs)
      const r = await post(t2.base, SESSION, { token });
      expect(r.status).toBe(401);
      expect(await code(r)).toBe('UNAUTHENTICATED');
      expect((await db.pool.query('SELECT count(*)::int AS n FROM okit.console_sessions WHERE token_id = $1', [id])).rows[0].n).toBe(0);
    } finally {
      await t2.srv.close();
    }
  });

  it('hostile sign-in bodies and cookies are typed 4xx, never a 5xx, and sign no one in', async () => {
    const before = (await db.pool.query('SELECT count(*)::int AS n FROM okit.console_sessions')).rows[0].n;
    for (const [body, want] of [
      [{ token: 42 }, 'UNAUTHENTICATED'],
      [{ token: `${t.tokens.read} ${t.tokens.admin}` }, 'UNAUTHENTICATED'],
      [{ token: 'x'.repeat(100_000) }, 'UNAUTHENTICATED'],
      [{ link: '\u001b[2Jokl_' + 'a'.repeat(43) }, 'UNAUTHENTICATED'],
      [{ link: ['okl_' + 'a'.repeat(43)] }, 'UNAUTHENTICATED'],
      [{ link: null }, 'UNAUTHENTICATED'],
    ] as const) {
      const r = await post(t.base, SESSION, body);
      expect(r.status, JSON.stringify(body).slice(0, 80)).toBe(401);
      expect(await code(r)).toBe(want);
    }
    // A pasted token keeps its trailing newline: surrounding whitespace is not part of a token.
    expect((await post(t.base, SESSION, { token: `  ${t.tokens.read}\n` })).status).toBe(201);
    const deep = await fetch(t.base + SESSION, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '['.repeat(100) + ']'.repeat(100) });
    expect(await code(deep)).toBe('INVALID_JSON');
    const form = await fetch(t.base + SESSION, { method: 'POST', headers: { 'Content-Type': 'application/x-www-form-urlencoded' }, body: `token=${t.tokens.admin}` });
    expect(form.status).toBe(415);
    for (const cookie of ['okit_session=' + 'x'.repeat(20_000), 'okit_session=%00%1b', 'okit_session=', 'okit_session', 'a=b; okit_session=oks_' + 'C'.repeat(43) + '; okit_session=x', '=;;=;okit_session==']) {
      const r = await t.get(`${API}/jobs`, null, { Cookie: cookie });
      expect(r.status, cookie.slice(0, 40)).toBe(401);
      expect(['SESSION_INVALID', 'UNAUTHORIZED']).toContain(await code(r));
    }
    expect((await db.pool.query('SELECT count(*)::int AS n FROM okit.console_sessions')).rows[0].n).toBe(before + 1);
  });

  it('a session survives a restart of the serving process (a child okit serve, stopped, and another started)', async () => {
    const a = await startChildServer(db.url);
    let s: Signed;
    try {
      s = await signIn({ token: t.tokens.admin }, a.baseUrl);
    } finally {
      await a.stop();
    }
    const b = await startChildServer(db.url);
    try {
      const r = await fetch(b.baseUrl + SESSION, { headers: withCookie(s) });
      expect(r.status).toBe(200);
      expect(await r.json()).toEqual(s.body);
      const id = await enqueue();
      const c = await fetch(`${b.baseUrl}${API}/jobs/${id}/cancel`, { method: 'POST', headers: withCookie(s, { 'Content-Type': 'application/json', 'X-CSRF-Token': s.csrf }), body: '{}' });
      expect(c.status).toBe(200);
    } finally {
      await b.stop();
    }
  }, 60_000);

  it('prunes sessions and links a week past their end, and nothing live', async () => {
    const live = await signIn({ token: t.tokens.read });
    const old = await signIn({ token: t.tokens.read });
    const link = await createLink(db.pool, { tenant: 'acme', scope: 'read' });
    const oldLink = await createLink(db.pool, { tenant: 'acme', scope: 'read' });
    await db.pool.query("UPDATE okit.console_sessions SET created_at = now() - interval '9 days', expires_at = now() - interval '8 days' WHERE csrf_token = $1", [old.csrf]);
    await db.pool.query("UPDATE okit.console_links SET created_at = now() - interval '9 days', expires_at = now() - interval '8 days' WHERE id = $1", [oldLink.id]);
    expect(await pruneSessions(db.pool, systemClock.now())).toBe(2);
    const left = await db.pool.query('SELECT csrf_token FROM okit.console_sessions WHERE csrf_token = ANY($1)', [[live.csrf, old.csrf]]);
    expect(left.rows.map((r) => r.csrf_token)).toEqual([live.csrf]);
    expect((await db.pool.query('SELECT id FROM okit.console_links WHERE id = ANY($1)', [[link.id, oldLink.id]])).rows.map((r) => r.id)).toEqual([link.id]);
  });

  it('a session survives a server restart (a new server on the same database), and the table holds only hashes', async () => {
    const s = await signIn({ token: t.tokens.admin });
    await t.srv.close(); // the first server is gone; a new one on the same database knows the session
    const second = await startServer({ url: db.url, pool: db.pool, ledger: new Ledger(db.pool), port: 0, secureCookies: true, sessionTtlSeconds: 600 });
    try {
      const r = await fetch(second.baseUrl + SESSION, { headers: withCookie(s) });
      expect(r.status).toBe(200);
      expect(await r.json()).toEqual(s.body);
      // Behind a TLS proxy (--secure-cookies) the cookie is Secure; --session-ttl sets Max-Age.
      const again = await signIn({ token: t.tokens.admin }, second.baseUrl);
      expect(again.setCookie).toMatch(/; Max-Age=600; Secure$/);
    } finally {
      await second.close();
    }
    const { rows } = await db.pool.query('SELECT session_sha256 FROM okit.console_sessions');
    const value = s.cookie.slice('okit_session=oks_'.length);
    for (const row of rows) expect(String(row.session_sha256)).not.toContain(value.slice(0, 20));
  });
});
