/**
 * Console sign-in (issue 16): a bearer token pasted once, or a one-time link printed by
 * `okit console-link`, is exchanged for a server-side session behind an HttpOnly,
 * SameSite=Strict cookie. Only sha256 hashes of cookie values and link codes are stored.
 * A session is bound to its token (revoking the token ends it) or to its link; it ends at
 * its expiry or at logout. Lookups are cached like tokens (`cacheTtlMs`), so a revocation or
 * a logout on another server bites within that time.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { within } from '../db/errors.js';
import type { Pool } from '../db/pool.js';
import { OkitError, isOkitError } from '../errors.js';
import * as v from '../ledger/validate.js';
import { ts } from '../ledger/rows.js';
import { systemClock, type Clock } from '../util/clock.js';
import { constantTimeEqual, sha256Hex } from '../util/hash.js';
import { formatMicros, parseMicros, SECOND, type Micros } from '../util/time.js';
import { allows, type Scope, type TokenAuth } from './tokens.js';

export const SESSION_COOKIE = 'okit_session';
export const CSRF_HEADER = 'x-csrf-token';
export const DEFAULT_SESSION_TTL_SECONDS = 12 * 3600;
export const DEFAULT_LINK_TTL_SECONDS = 15 * 60;
export const MAX_LINK_TTL_SECONDS = 24 * 3600;
/** Live sessions one token may hold; a new sign-in past it ends the oldest (a link signs in once). */
export const MAX_SESSIONS_PER_TOKEN = 50;
/** Session lookups cached per server, at most; past it the oldest entries go first. */
export const SESSION_CACHE_ENTRIES = 10_000;
const SESSION_RE = /^oks_[A-Za-z0-9_-]{43}$/;
const LINK_RE = /^okl_[A-Za-z0-9_-]{43}$/;

export type ConsoleScope = 'read' | 'admin';

/** What the page is told about its session (POST and GET /api/v1/console/session). */
export interface SessionView {
  tenant: string;
  scope: ConsoleScope;
  csrf_token: string;
  expires_at: string;
}

export interface SessionPrincipal {
  sessionId: string;
  tenant: string;
  scope: ConsoleScope;
  csrf: string;
  /** The ledger actor of this session's actions: its token's (`token:<id>`) or its link's (`link:<id>`). */
  actor: string;
  expiresAt: Micros;
  expiresText: string;
}

export function viewOf(p: SessionPrincipal): SessionView {
  return { tenant: p.tenant, scope: p.scope, csrf_token: p.csrf, expires_at: p.expiresText };
}

function consoleScope(s: unknown): ConsoleScope {
  if (s !== 'read' && s !== 'admin') throw new OkitError('INVALID_INPUT', 'scope: must be read or admin', { field: 'scope' });
  return s;
}

/** Creates a one-time sign-in code (printed once; only its sha256 is stored). */
export async function createLink(
  pool: Pool,
  input: { tenant: string; scope: string; ttlSeconds?: number },
  clock: Clock = systemClock,
): Promise<{ id: string; code: string; tenant: string; scope: ConsoleScope; expires_at: string }> {
  const tenant = v.tenant(input.tenant);
  const scope = consoleScope(input.scope);
  const ttl = input.ttlSeconds ?? DEFAULT_LINK_TTL_SECONDS;
  if (!Number.isInteger(ttl) || ttl < 1 || ttl > MAX_LINK_TTL_SECONDS)
    throw new OkitError('INVALID_INPUT', `ttl: must be from 1 s to ${MAX_LINK_TTL_SECONDS / 3600} h`, { field: 'ttl' });
  const code = 'okl_' + randomBytes(32).toString('base64url');
  const id = randomUUID();
  const now = clock.now();
  const expires = formatMicros(now + BigInt(ttl) * SECOND);
  await pool.query('INSERT INTO okit.console_links (id, tenant, scope, code_sha256, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)', [
    id,
    tenant,
    scope,
    sha256Hex(code),
    formatMicros(now),
    expires,
  ]);
  return { id, code, tenant, scope, expires_at: expires };
}

/** Ended sessions and links are kept this long (for a look at who signed in), then deleted. */
export const SESSION_KEEP_SECONDS = 7 * 86_400;

/** Deletes sessions ended (expired or logged out) and links expired over SESSION_KEEP_SECONDS before `now`. */
export async function pruneSessions(pool: Pool, now: Micros): Promise<number> {
  const cut = formatMicros(now - BigInt(SESSION_KEEP_SECONDS) * SECOND);
  const s = await pool.query('DELETE FROM okit.console_sessions WHERE expires_at < $1 OR revoked_at < $1', [cut]);
  const l = await pool.query(
    'DELETE FROM okit.console_links l WHERE l.expires_at < $1 AND NOT EXISTS (SELECT 1 FROM okit.console_sessions s WHERE s.link_id = l.id)',
    [cut],
  );
  return (s.rowCount ?? 0) + (l.rowCount ?? 0);
}

/** The okit_session cookie's value, if the request carries one (the first, if several). */
export function sessionCookie(req: IncomingMessage): string | undefined {
  return sessionCookies(req)[0];
}

/** okit_session values tried per request, at most (each well-formed one may cost a lookup). */
export const MAX_SESSION_COOKIES = 8;

/**
 * Every okit_session value the request carries, in order. Several can arrive: a sibling
 * subdomain (or a script on one) may set its own okit_session for a wider Domain or a longer
 * Path, which the browser sends first ("cookie tossing"); taking only the first would let it
 * sign the user out, so each is tried and the first valid one wins.
 */
export function sessionCookies(req: IncomingMessage): string[] {
  const raw = req.headers.cookie;
  if (!raw) return [];
  const out: string[] = [];
  for (const part of raw.split(';')) {
    const i = part.indexOf('=');
    if (i < 0) continue;
    if (part.slice(0, i).trim() === SESSION_COOKIE) out.push(part.slice(i + 1).trim());
  }
  return out;
}

export function isHttps(req: IncomingMessage): boolean {
  return (req.socket as TLSSocket).encrypted === true;
}

/**
 * A state-changing request sent by another site: `Sec-Fetch-Site` other than same-origin or
 * none, or an `Origin` that is not this server's own. SameSite=Strict already keeps the
 * cookie off such requests in a browser; this is the second wall.
 */
export function crossSite(req: IncomingMessage): string | null {
  const site = req.headers['sec-fetch-site'];
  if (site !== undefined && site !== 'same-origin' && site !== 'none') return `Sec-Fetch-Site: ${String(site).slice(0, 40)}`;
  const origin = req.headers.origin;
  if (origin !== undefined) {
    // By host (and port) alone: behind a TLS proxy the browser's https origin reaches us over http.
    let host: string | null = null;
    try {
      host = new URL(origin).host.toLowerCase();
    } catch {
      host = null; // `null` and other opaque origins
    }
    const own = (req.headers.host ?? '').toLowerCase();
    if (!host || host !== own) return `Origin ${origin.slice(0, 100)} is not this server (${own.slice(0, 100)})`;
  }
  return null;
}

const SAFE = new Set(['GET', 'HEAD', 'OPTIONS']);
export const isSafeMethod = (m: string | undefined) => SAFE.has(m ?? 'GET');

export interface SessionOptions {
  /** How long a session lives (default 12 h). */
  ttlSeconds?: number;
  /** A positive lookup is trusted this long (use the token cache time). */
  cacheTtlMs?: number;
  /** Is the database answering? When not, a session not in the cache is 503 at once. */
  dbUp?: () => boolean;
  lookupTimeoutMs?: number;
  /** Lookups cached, at most (default SESSION_CACHE_ENTRIES). */
  cacheEntries?: number;
  /** Mark cookies Secure even over plain http (a TLS proxy in front); https requests always are. */
  secureCookies?: boolean;
}

export class ConsoleSessions {
  private readonly cache = new Map<string, { p: SessionPrincipal; at: number }>();
  readonly ttlSeconds: number;
  constructor(
    private readonly pool: Pool,
    private readonly auth: TokenAuth,
    private readonly clock: Clock = systemClock,
    private readonly o: SessionOptions = {},
  ) {
    this.ttlSeconds = o.ttlSeconds ?? DEFAULT_SESSION_TTL_SECONDS;
  }

  /** `Set-Cookie` for a new session, or (value null) the one that clears it. */
  cookie(req: IncomingMessage, value: string | null): string {
    const secure = this.o.secureCookies || isHttps(req) ? '; Secure' : '';
    return `${SESSION_COOKIE}=${value ?? ''}; HttpOnly; SameSite=Strict; Path=/; Max-Age=${value === null ? 0 : this.ttlSeconds}${secure}`;
  }

  /** Exchanges `{"token"}` or `{"link"}` for a new session: its cookie value and what the page is told. */
  async signIn(body: Record<string, unknown>): Promise<{ cookieValue: string; principal: SessionPrincipal }> {
    const hasToken = body.token !== undefined;
    const hasLink = body.link !== undefined;
    if (hasToken === hasLink) throw new OkitError('INVALID_INPUT', 'give exactly one of "token" (a bearer token) or "link" (a one-time code)', { field: hasToken ? 'link' : 'token' });
    let tenant: string;
    let scope: ConsoleScope;
    let tokenId: string | null = null;
    let linkId: string | null = null;
    if (hasToken) {
      if (typeof body.token !== 'string') throw new OkitError('UNAUTHENTICATED', 'invalid token');
      // Whitespace around a pasted token is not part of it; inside it, it is (and fails).
      const p = await this.auth.authenticate(`Bearer ${body.token.trim()}`, 'read').catch((e) => {
        throw isOkitError(e) && (e.code === 'UNAUTHORIZED' || e.code === 'FORBIDDEN') ? new OkitError('UNAUTHENTICATED', 'invalid token') : e;
      });
      if (p.scope !== 'read' && p.scope !== 'admin')
        throw new OkitError('FORBIDDEN', `a console session needs a read or admin token; this one has ${p.scope} (okit tokens create --scope read|admin)`);
      ({ tenant, scope, tokenId } = { tenant: p.tenant, scope: p.scope, tokenId: p.tokenId });
    } else {
      ({ tenant, scope, linkId } = await this.useLink(body.link));
    }
    const cookieValue = 'oks_' + randomBytes(32).toString('base64url');
    const csrf = randomBytes(32).toString('base64url');
    const id = randomUUID();
    const now = this.clock.now();
    const expiresAt = now + BigInt(this.ttlSeconds) * SECOND;
    const expiresText = formatMicros(expiresAt);
    // The token check above may come from the token cache; the insert itself re-checks that the
    // token is not revoked, so a token revoked seconds ago cannot sign in on any server.
    const ins = await this.pool.query(
      `INSERT INTO okit.console_sessions (id, session_sha256, tenant, scope, token_id, link_id, csrf_token, created_at, expires_at)
       SELECT $1, $2, $3, $4, $5::uuid, $6::uuid, $7, $8, $9
        WHERE $5::uuid IS NULL OR EXISTS (SELECT 1 FROM okit.api_tokens WHERE id = $5::uuid AND revoked_at IS NULL)`,
      [id, sha256Hex(cookieValue), tenant, scope, tokenId, linkId, csrf, formatMicros(now), expiresText],
    );
    if (ins.rowCount !== 1) throw new OkitError('UNAUTHENTICATED', 'invalid token');
    // A script that signs in again and again with one token would otherwise pile up sessions.
    if (tokenId)
      await this.pool.query(
        `UPDATE okit.console_sessions SET revoked_at = $2 WHERE id IN (
           SELECT id FROM okit.console_sessions WHERE token_id = $1 AND revoked_at IS NULL AND expires_at > $2
            ORDER BY created_at DESC, id DESC OFFSET ${MAX_SESSIONS_PER_TOKEN})`,
        [tokenId, formatMicros(now)],
      );
    const actor = tokenId ? `token:${tokenId}` : `link:${linkId}`;
    return { cookieValue, principal: { sessionId: id, tenant, scope, csrf, actor, expiresAt, expiresText } };
  }

  /** Marks a link used, once: one UPDATE … WHERE used_at IS NULL, so two racing sign-ins cannot both win. */
  private async useLink(code: unknown): Promise<{ tenant: string; scope: ConsoleScope; linkId: string }> {
    if (typeof code !== 'string' || !LINK_RE.test(code)) throw new OkitError('UNAUTHENTICATED', 'invalid sign-in link');
    const hash = sha256Hex(code);
    const now = formatMicros(this.clock.now());
    const { rows } = await this.pool.query(
      'UPDATE okit.console_links SET used_at = $2 WHERE code_sha256 = $1 AND used_at IS NULL AND expires_at > $2 RETURNING id, tenant, scope',
      [hash, now],
    );
    if (rows[0]) return { tenant: String(rows[0].tenant), scope: consoleScope(rows[0].scope), linkId: String(rows[0].id) };
    const { rows: seen } = await this.pool.query('SELECT used_at IS NOT NULL AS used FROM okit.console_links WHERE code_sha256 = $1', [hash]);
    if (!seen[0]) throw new OkitError('UNAUTHENTICATED', 'invalid sign-in link');
    if (seen[0].used) throw new OkitError('LINK_USED', 'this sign-in link was already used; print a new one with okit console-link');
    throw new OkitError('LINK_EXPIRED', 'this sign-in link has expired; print a new one with okit console-link');
  }

  /** The live session behind a cookie value: SESSION_INVALID (unknown, logged out, token revoked) or SESSION_EXPIRED. */
  async lookup(value: string): Promise<SessionPrincipal> {
    if (!SESSION_RE.test(value)) throw new OkitError('SESSION_INVALID', 'no valid console session; sign in again');
    const hash = sha256Hex(value);
    const e = this.cache.get(hash);
    let p = e && performance.now() - e.at <= (this.o.cacheTtlMs ?? 5000) ? e.p : undefined;
    if (!p) {
      this.cache.delete(hash);
      if (this.o.dbUp && !this.o.dbUp()) throw new OkitError('DB_UNAVAILABLE', 'the database is unavailable, so the session cannot be checked; retry shortly');
      const ms = this.o.lookupTimeoutMs ?? Infinity;
      const found = await within(
        this.pool.query({
          text: `SELECT s.id, s.session_sha256, s.tenant, s.scope, s.token_id, s.link_id, s.csrf_token, s.expires_at, s.revoked_at IS NOT NULL AS ended,
                        t.revoked_at IS NOT NULL AS token_revoked
                   FROM okit.console_sessions s LEFT JOIN okit.api_tokens t ON t.id = s.token_id
                  WHERE s.session_sha256 = $1`,
          values: [hash],
          ...(Number.isFinite(ms) ? { query_timeout: ms + 1000 } : {}),
        }),
        ms,
      );
      if (!found) throw new OkitError('DB_UNAVAILABLE', `the session could not be checked within ${ms} ms; retry shortly`);
      const r = found.rows[0];
      if (!r || !constantTimeEqual(String(r.session_sha256), hash) || r.ended || r.token_revoked) throw new OkitError('SESSION_INVALID', 'no valid console session; sign in again');
      const expiresText = ts(r.expires_at);
      p = {
        sessionId: String(r.id),
        tenant: String(r.tenant),
        scope: consoleScope(r.scope),
        csrf: String(r.csrf_token),
        actor: r.token_id ? `token:${r.token_id}` : `link:${r.link_id}`,
        expiresAt: parseMicros(expiresText),
        expiresText,
      };
      this.cache.set(hash, { p, at: performance.now() });
      // Insertion order is age order (an entry is deleted before it is refreshed): drop the oldest.
      for (const k of this.cache.keys()) {
        if (this.cache.size <= (this.o.cacheEntries ?? SESSION_CACHE_ENTRIES)) break;
        this.cache.delete(k);
      }
    }
    if (this.clock.now() >= p.expiresAt) throw new OkitError('SESSION_EXPIRED', 'the console session has expired; sign in again');
    return p;
  }

  /**
   * The first live session among several cookie values (see sessionCookies): well-formed values
   * only, at most MAX_SESSION_COOKIES of them; none live → SESSION_EXPIRED if one had expired,
   * else SESSION_INVALID. A database that does not answer is 503 at once.
   */
  async lookupAny(values: string[]): Promise<{ value: string; p: SessionPrincipal }> {
    const tries = [...new Set(values.filter((x) => SESSION_RE.test(x)))].slice(0, MAX_SESSION_COOKIES);
    let expired: unknown;
    for (const value of tries) {
      try {
        return { value, p: await this.lookup(value) };
      } catch (e) {
        if (!isOkitError(e) || (e.code !== 'SESSION_INVALID' && e.code !== 'SESSION_EXPIRED')) throw e;
        if (e.code === 'SESSION_EXPIRED') expired ??= e;
      }
    }
    throw expired ?? new OkitError('SESSION_INVALID', 'no valid console session; sign in again');
  }

  /** Logout: the session ends here at once, on other servers within the cache time. */
  async end(value: string, p: SessionPrincipal): Promise<void> {
    this.cache.delete(sha256Hex(value));
    await this.pool.query('UPDATE okit.console_sessions SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL', [p.sessionId, formatMicros(this.clock.now())]);
  }

  /**
   * A request's principal from its cookie (no Authorization header): a state-changing request
   * must come from this site and carry the session's CSRF token; the session's scope must allow `need`.
   */
  async authenticateCookie(req: IncomingMessage, values: string[], need: Scope): Promise<SessionPrincipal> {
    const unsafe = !isSafeMethod(req.method);
    if (unsafe) {
      const why = crossSite(req);
      if (why) throw new OkitError('CSRF_REJECTED', `cross-site request refused (${why})`);
    }
    const { p } = await this.lookupAny(values);
    if (unsafe) {
      const h = req.headers[CSRF_HEADER];
      if (typeof h !== 'string' || !constantTimeEqual(h, p.csrf)) throw new OkitError('CSRF_REJECTED', `a state-changing request with the session cookie needs the X-CSRF-Token header of its session`);
    }
    if (!allows(p.scope, need)) throw new OkitError('FORBIDDEN', `this call needs the ${need} scope; the session has ${p.scope}`);
    return p;
  }
}

/** Bearer first (every non-browser client), then the console cookie; neither: the usual 401. */
export async function authenticateRequest(
  req: IncomingMessage,
  auth: TokenAuth,
  sessions: ConsoleSessions | undefined,
  need: Scope,
): Promise<{ tenant: string; actor: string; principal: string }> {
  const cookies = sessions && req.headers.authorization === undefined ? sessionCookies(req) : [];
  if (cookies.length > 0 && sessions) {
    const p = await sessions.authenticateCookie(req, cookies, need);
    return { tenant: p.tenant, actor: p.actor, principal: `session:${p.sessionId}` };
  }
  const p = await auth.authenticate(req.headers.authorization, need);
  return { tenant: p.tenant, actor: `token:${p.tokenId}`, principal: `token:${p.tokenId}` };
}

/** One console session as `okit sessions list` shows it. */
export interface SessionRow {
  id: string;
  tenant: string;
  scope: ConsoleScope;
  /** `token:<id>` or `link:<id>`: what it signed in with. */
  via: string;
  created_at: string;
  expires_at: string;
  /** live, expired, ended (logged out or revoked) or token_revoked. */
  state: 'live' | 'expired' | 'ended' | 'token_revoked';
}

/** A tenant's console sessions, newest first (live ones, and ended ones not yet pruned). */
export async function listSessions(pool: Pool, tenant: string, now: Micros): Promise<SessionRow[]> {
  const { rows } = await pool.query(
    `SELECT s.id, s.tenant, s.scope, s.token_id, s.link_id, s.created_at, s.expires_at, s.revoked_at IS NOT NULL AS ended, t.revoked_at IS NOT NULL AS token_revoked
       FROM okit.console_sessions s LEFT JOIN okit.api_tokens t ON t.id = s.token_id
      WHERE s.tenant = $1 ORDER BY s.created_at DESC, s.id`,
    [v.tenant(tenant)],
  );
  return rows.map((r) => {
    const expires = ts(r.expires_at);
    const state = r.ended ? 'ended' : r.token_revoked ? 'token_revoked' : parseMicros(expires) <= now ? 'expired' : 'live';
    return { id: String(r.id), tenant: String(r.tenant), scope: consoleScope(r.scope), via: r.token_id ? `token:${r.token_id}` : `link:${r.link_id}`, created_at: ts(r.created_at), expires_at: expires, state };
  });
}

/**
 * Ends live sessions: one (`id`), every one signed in by a link (`link`; the link, if unused,
 * can no longer sign in either), or all of a tenant's (`tenant`). Returns how many ended.
 * Other servers notice within their session cache time (the token cache time, 5 s by default).
 */
export async function revokeSessions(pool: Pool, by: { id?: string; link?: string; tenant?: string }, now: Micros): Promise<number> {
  const given = (['id', 'link', 'tenant'] as const).filter((k) => by[k] !== undefined);
  if (given.length !== 1) throw new OkitError('INVALID_INPUT', 'give exactly one of --id <session id>, --link <link id> or --tenant <tenant>', { field: given[1] ?? 'id' });
  const at = formatMicros(now);
  if (by.link !== undefined) {
    const link = v.uuid(by.link, 'link');
    await pool.query('UPDATE okit.console_links SET used_at = $2 WHERE id = $1 AND used_at IS NULL', [link, at]);
    const r = await pool.query('UPDATE okit.console_sessions SET revoked_at = $2 WHERE link_id = $1 AND revoked_at IS NULL', [link, at]);
    return r.rowCount ?? 0;
  }
  const [col, val] = by.id !== undefined ? ['id', v.uuid(by.id, 'id')] : ['tenant', v.tenant(by.tenant)];
  const r = await pool.query(`UPDATE okit.console_sessions SET revoked_at = $2 WHERE ${col} = $1 AND revoked_at IS NULL`, [val, at]);
  return r.rowCount ?? 0;
}
