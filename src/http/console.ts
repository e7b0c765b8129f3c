/**
 * What `okit serve` gives a browser (issue 16): the built page from dist/console/ (`/` and
 * `/console/<file>`, ETag/304, no listing, no path outside the folder), redirects from the
 * `href`s of next actions (`/jobs/:id`, `/runs/:id`) into the page's hash routes, and the
 * session API (`/api/v1/console/session`). Security headers for every response are set in
 * server.ts; HTML gets the strict CSP here.
 */
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { OkitError } from '../errors.js';
import * as v from '../ledger/validate.js';
import { matchesEtag } from '../signals/handlers.js';
import { readJson } from './body.js';
import type { Ctx, Router } from './router.js';
import { sendJson } from './send.js';
import { crossSite, sessionCookies, viewOf, CSRF_HEADER, SESSION_COOKIE, type ConsoleSessions } from './sessions.js';
import { constantTimeEqual } from '../util/hash.js';

export const CONSOLE_API = '/api/v1/console';

/** The page's policy: nothing inline, nothing from elsewhere, never framed. */
export const CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";
export const HTML_HEADERS: Record<string, string> = { 'Content-Security-Policy': CSP, 'X-Frame-Options': 'DENY' };
/** On every response, API included (set by the server before routing). */
export const COMMON_HEADERS: Record<string, string> = { 'X-Content-Type-Options': 'nosniff', 'Referrer-Policy': 'no-referrer' };

/** dist/console/ of this package, from src/http (tests) and from dist/http (the build) alike. */
export const DEFAULT_CONSOLE_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'dist', 'console');

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.json': 'application/json; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.txt': 'text/plain; charset=utf-8',
  '.woff2': 'font/woff2',
};
/** One path segment, no dot first (so no `..`, no hidden files), a known extension. */
const FILE_RE = /^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$/;
/** A file larger than this is not served (the page is a few tens of KB). */
const MAX_FILE_BYTES = 8 * 1024 * 1024;

interface Cached {
  mtimeMs: number;
  size: number;
  etag: string;
  body: Buffer;
}

/** Files of the built page, read once per (mtime, size) and kept with their ETag. */
export class StaticFiles {
  private readonly cache = new Map<string, Cached>();
  constructor(readonly dir: string) {}

  async get(name: string): Promise<Cached | null> {
    if (!FILE_RE.test(name) || !(path.extname(name) in TYPES)) return null;
    const file = path.join(this.dir, name);
    if (path.dirname(file) !== path.resolve(this.dir)) return null;
    let st;
    try {
      st = await fs.stat(file);
    } catch {
      return null;
    }
    if (!st.isFile() || st.size > MAX_FILE_BYTES) return null;
    const c = this.cache.get(name);
    if (c && c.mtimeMs === st.mtimeMs && c.size === st.size) return c;
    let body: Buffer;
    try {
      body = await fs.readFile(file);
    } catch {
      return null;
    }
    const etag = `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"`;
    const fresh = { mtimeMs: st.mtimeMs, size: st.size, etag, body };
    this.cache.set(name, fresh);
    return fresh;
  }
}

const NOT_BUILT = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>okit console: not built</title></head>
<body><h1>The okit console is not built</h1>
<p>This server found no <code>dist/console/index.html</code>. Build it with <code>npm run build</code>
(or install the package or offline kit, which ship it), then reload. The HTTP API under
<code>/api/v1/</code> works without it.</p></body></html>
`;

async function sendFile(ctx: Ctx, files: StaticFiles, name: string): Promise<void> {
  const f = await files.get(name);
  if (!f) {
    if (name === 'index.html') {
      ctx.res.writeHead(404, { ...HTML_HEADERS, 'Content-Type': 'text/html; charset=utf-8', 'Content-Length': String(Buffer.byteLength(NOT_BUILT)), 'Cache-Control': 'no-store' });
      ctx.res.end(NOT_BUILT);
      return;
    }
    throw new OkitError('NOT_FOUND', `no console file ${name.length > 100 ? name.slice(0, 100) + '…' : name}`);
  }
  const type = TYPES[path.extname(name)]!;
  // Names are not content-hashed: the browser revalidates each time (a 304 costs a round trip, no bytes).
  const headers: Record<string, string> = { ETag: f.etag, 'Cache-Control': 'no-cache', ...(type.startsWith('text/html') ? HTML_HEADERS : {}) };
  if (matchesEtag(ctx.req.headers['if-none-match'], f.etag)) {
    ctx.res.writeHead(304, headers);
    ctx.res.end();
    return;
  }
  ctx.res.writeHead(200, { ...headers, 'Content-Type': type, 'Content-Length': String(f.body.length) });
  ctx.res.end(f.body);
}

export interface ConsoleDeps {
  sessions: ConsoleSessions;
  files: StaticFiles;
  maxBodyBytes: number;
  dbUp(): boolean;
}

export function addConsoleRoutes(r: Router, d: ConsoleDeps): void {
  r.add('GET', '/', (ctx) => sendFile(ctx, d.files, 'index.html'));
  r.add('GET', '/console/:file', (ctx) => sendFile(ctx, d.files, ctx.params.file!));
  // The `href`s of next actions (issue 14) open the page's own routes.
  const redirect = (kind: 'jobs' | 'runs', field: string) => async (ctx: Ctx) => {
    const id = v.uuid(ctx.params.id, field);
    ctx.res.writeHead(302, { Location: `/#/${kind}/${id}`, 'Content-Length': '0', 'Cache-Control': 'no-store' });
    ctx.res.end();
  };
  r.add('GET', '/jobs/:id', redirect('jobs', 'job_id'));
  r.add('GET', '/runs/:id', redirect('runs', 'run_id'));

  const noStore = { 'Cache-Control': 'no-store' };
  const needDb = () => {
    if (!d.dbUp()) throw new OkitError('DB_UNAVAILABLE', 'the database is not answering; retry shortly');
  };
  r.add('POST', `${CONSOLE_API}/session`, async (ctx) => {
    // Login CSRF: another site must not sign a browser into a session of its choosing.
    const why = crossSite(ctx.req);
    if (why) throw new OkitError('CSRF_REJECTED', `cross-site request refused (${why})`);
    const b = await readJson(ctx.req, d.maxBodyBytes);
    needDb();
    const { cookieValue, principal } = await d.sessions.signIn(b);
    sendJson(ctx.res, 201, { session: viewOf(principal) }, { ...noStore, 'Set-Cookie': d.sessions.cookie(ctx.req, cookieValue) });
  });
  const current = async (ctx: Ctx) => {
    const values = sessionCookies(ctx.req);
    if (values.length === 0) throw new OkitError('SESSION_INVALID', `no console session (the ${SESSION_COOKIE} cookie); sign in first`);
    return d.sessions.lookupAny(values);
  };
  r.add('GET', `${CONSOLE_API}/session`, async (ctx) => {
    const { p } = await current(ctx);
    sendJson(ctx.res, 200, { session: viewOf(p) }, noStore);
  });
  r.add('DELETE', `${CONSOLE_API}/session`, async (ctx) => {
    const why = crossSite(ctx.req);
    if (why) throw new OkitError('CSRF_REJECTED', `cross-site request refused (${why})`);
    let s: Awaited<ReturnType<typeof current>> | undefined;
    try {
      s = await current(ctx);
    } catch (e) {
      // A session already gone or expired: logging out of it just clears the cookie.
      const gone = e instanceof OkitError && (e.code === 'SESSION_EXPIRED' || e.code === 'SESSION_INVALID') && sessionCookies(ctx.req).length > 0;
      if (!gone) throw e;
    }
    if (s) {
      const h = ctx.req.headers[CSRF_HEADER];
      if (typeof h !== 'string' || !constantTimeEqual(h, s.p.csrf)) throw new OkitError('CSRF_REJECTED', 'logout needs the X-CSRF-Token header of its session');
      await d.sessions.end(s.value, s.p);
    }
    ctx.res.writeHead(204, { ...noStore, 'Set-Cookie': d.sessions.cookie(ctx.req, null) });
    ctx.res.end();
  });
}
