/**
 * Tenants × scopes × routes: every route the server's router holds (its own table, so a route
 * added without a row here fails the test), called with no token, a metrics token, and each
 * tenant scope of two tenants, on an object of the caller's tenant and on one of the other's.
 * - a scope too small is 403 FORBIDDEN (401 UNAUTHORIZED without a token, and at /metrics for
 *   a tenant token), byte for byte the same whoever owns the object;
 * - an allowed call on the caller's own object succeeds (2xx);
 * - an allowed call on the other tenant's object is 404 exactly as an absent one (same status,
 *   same body with the id swapped), and leaves the owner's state as it was; a collection route
 *   (lists, creates, claims) answers 2xx without a trace of the other tenant.
 * One server, one database, every fixture made fresh for its call, calls in parallel.
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startServer, type RunningServer } from '../../src/http/server.js';
import { createToken } from '../../src/http/tokens.js';
import { Ledger } from '../../src/ledger/ledger.js';
import { freshDb, type TestDb } from '../helpers/db.js';

const API = '/api/v1/orchestrator';
const TENANTS = ['acme', 'beta'] as const;
type Tenant = (typeof TENANTS)[number];
const TENANT_SCOPES = ['read', 'worker', 'admin'] as const;
type TenantScope = (typeof TENANT_SCOPES)[number];
const RANK: Record<TenantScope, number> = { read: 0, worker: 1, admin: 2 };

/** What a fixture made in the owner's tenant gives the call. */
interface Fx {
  /** The owned object the route names (job, source, signature, run id). */
  id?: string;
  /** Ids and names of the owner's that the owner's answer shows and a foreign answer must not. */
  secrets?: string[];
  lease?: { worker_id: string; lease_token: string };
  /** A job type or host made for this fixture alone. */
  name?: string;
}

interface Row {
  /**
   * Who may call: public (no token), metrics (a metrics token only), session (the console
   * cookie only: every bearer caller is 401 SESSION_INVALID) or the least tenant scope.
   */
  need: 'public' | 'metrics' | 'session' | TenantScope;
  /**
   * object: the route names an object of a tenant (foreign = absent, 404); collection: the
   * tenant's set; listed: the caller lists ids and a foreign one is answered exactly as an
   * absent one (2xx, same bytes with the id swapped).
   */
  kind: 'object' | 'collection' | 'listed';
  /** A public route's status, when not 200. */
  status?: number;
  /** The 404 code of an absent or foreign object. */
  notFound?: string;
  setup?(owner: Tenant): Promise<Fx>;
  /** The request, with `id` in place of the fixture's object (a random id for the absent twin). */
  req(fx: Fx, id: string): { path: string; body?: unknown; headers?: Record<string, string> };
  /** After a foreign caller's call: the owner's state is as it was. */
  untouched?(owner: Tenant, fx: Fx): Promise<void>;
}

let db: TestDb;
let srv: RunningServer;
let ledger: Ledger;
const tokens = {} as Record<Tenant, Record<TenantScope, string>>;
let metricsToken = '';
let consoleDir = '';

beforeAll(async () => {
  db = await freshDb();
  ledger = new Ledger(db.pool);
  // A stand-in for the built page (dist/console/ may not be built when this runs).
  consoleDir = mkdtempSync(path.join(tmpdir(), 'okit-mx-console-'));
  writeFileSync(path.join(consoleDir, 'index.html'), '<!doctype html><title>okit</title>');
  writeFileSync(path.join(consoleDir, 'app.js'), '');
  srv = await startServer({ url: db.url, pool: db.pool, ledger, port: 0, telemetry: true, fallbackPollMs: 200, consoleDir });
  for (const t of TENANTS) {
    tokens[t] = {} as Record<TenantScope, string>;
    for (const s of TENANT_SCOPES) tokens[t][s] = (await createToken(db.pool, { tenant: t, scope: s })).token;
  }
  metricsToken = (await createToken(db.pool, { tenant: 'acme', scope: 'metrics' })).token;
});
afterAll(async () => {
  await srv?.close();
  await db?.drop();
  if (consoleDir) rmSync(consoleDir, { recursive: true, force: true });
});

let n = 0;
const uniq = (p: string) => `${p}${++n}`;
const ACTOR = 'token:matrix-setup';

// ------------------------------------------------------------ fixtures (in-process, in the owner's tenant)
async function queued(owner: Tenant, over: Record<string, unknown> = {}): Promise<Fx> {
  const name = uniq('mx-type-');
  const { job } = await ledger.enqueue(owner, { type: name, payload: { n }, ...over });
  return { id: job.id, secrets: [job.id], name };
}
async function claimed(owner: Tenant): Promise<Fx> {
  const fx = await queued(owner);
  const c = await ledger.claim(owner, { workerId: 'mx-worker', types: [fx.name!] });
  expect(c?.job.id).toBe(fx.id);
  return { ...fx, lease: { worker_id: 'mx-worker', lease_token: c!.leaseToken } };
}
async function canceled(owner: Tenant): Promise<Fx> {
  const fx = await queued(owner);
  await ledger.cancel(owner, fx.id!, { actor: ACTOR });
  return fx;
}
async function deadLetter(owner: Tenant): Promise<Fx> {
  const fx = await queued(owner, { maxAttempts: 1 });
  const c = await ledger.claim(owner, { workerId: 'mx-worker', types: [fx.name!] });
  await ledger.fail(owner, fx.id!, { workerId: 'mx-worker', leaseToken: c!.leaseToken }, { code: 'E_MX', message: 'gone' });
  expect((await ledger.getJob(owner, fx.id!)).state).toBe('dead_letter');
  return fx;
}
async function source(owner: Tenant): Promise<Fx> {
  const name = uniq('mx-src-');
  const s = await ledger.createSource(owner, { name, host: `${name}.example` });
  return { id: s.id, secrets: [s.id], name };
}
async function signature(owner: Tenant): Promise<Fx> {
  const code = uniq('E_MX_');
  const { signature: s } = await ledger.addSignature(owner, { pattern: { error_code: code }, outcome: { likely_cause: 'mx' }, actor: ACTOR });
  return { id: s.id, secrets: [s.id], name: code };
}
async function run(owner: Tenant): Promise<Fx> {
  const { run: r } = await ledger.createRun(owner, {});
  return { id: r.id, secrets: [r.id] };
}
async function throttle(owner: Tenant): Promise<Fx> {
  const host = `${uniq('mx-host-')}.example`;
  await ledger.configureThrottle(owner, host, { capacity: 3, refillPerSec: 1 });
  return { secrets: [host], name: host };
}
async function paused(owner: Tenant): Promise<Fx> {
  const name = uniq('mx-paused-');
  await ledger.pause(owner, name, { actor: ACTOR, reason: 'matrix' });
  return { secrets: [name], name };
}
const isPaused = async (owner: Tenant, type: string) => (await ledger.listQueues(owner)).some((q) => q.type === type && q.paused !== null);
const stateOf = async (owner: Tenant, id: string) => (await ledger.getJob(owner, id)).state;

const lease = (fx: Fx) => fx.lease!;

/** One row per route, keyed `METHOD pattern` exactly as the router holds it. */
const ROWS: Record<string, Row> = {
  'GET /healthz': { need: 'public', kind: 'collection', req: () => ({ path: '/healthz' }) },
  'GET /readyz': { need: 'public', kind: 'collection', req: () => ({ path: '/readyz' }) },
  'GET /metrics': { need: 'metrics', kind: 'collection', req: () => ({ path: '/metrics' }) },

  [`GET ${API}/jobs/:id/first-signal`]: { need: 'read', kind: 'object', notFound: 'JOB_NOT_FOUND', setup: queued, req: (_, id) => ({ path: `${API}/jobs/${id}/first-signal` }) },
  // A finished job: the stream sends its signal and `done`, then closes.
  [`GET ${API}/stream/jobs/:id/first-signal`]: {
    need: 'read',
    kind: 'object',
    notFound: 'JOB_NOT_FOUND',
    setup: canceled,
    req: (_, id) => ({ path: `${API}/stream/jobs/${id}/first-signal`, headers: { Accept: 'text/event-stream' } }),
  },
  [`POST ${API}/telemetry/ttfs`]: {
    need: 'read',
    kind: 'object',
    notFound: 'JOB_NOT_FOUND',
    setup: queued,
    req: (_, id) => ({ path: `${API}/telemetry/ttfs`, body: { events: [{ surface: 'cli', event_type: 'signal.rendered', ttfs_ms: 12.5, job_id: id }] } }),
  },
  [`GET ${API}/jobs/:id`]: { need: 'read', kind: 'object', notFound: 'JOB_NOT_FOUND', setup: queued, req: (_, id) => ({ path: `${API}/jobs/${id}` }) },
  [`GET ${API}/jobs/:id/history`]: { need: 'read', kind: 'object', notFound: 'JOB_NOT_FOUND', setup: queued, req: (_, id) => ({ path: `${API}/jobs/${id}/history` }) },
  // The same idempotency key in the owner's tenant: the owner gets its job back, another tenant a new one.
  [`POST ${API}/jobs`]: {
    need: 'worker',
    kind: 'collection',
    setup: async (owner) => {
      const key = uniq('mx-key-');
      const fx = await queued(owner, { idempotencyKey: key, payload: { k: key } });
      return { ...fx, name: key };
    },
    req: (fx) => ({ path: `${API}/jobs`, body: { type: 'mx', payload: { k: fx.name }, idempotency_key: fx.name } }),
  },
  [`POST ${API}/workers/claim`]: {
    need: 'worker',
    kind: 'collection',
    setup: queued,
    req: (fx) => ({ path: `${API}/workers/claim`, body: { worker_id: 'mx-claimer', types: [fx.name] } }),
    untouched: async (owner, fx) => expect(await stateOf(owner, fx.id!)).toBe('queued'),
  },
  [`POST ${API}/jobs/:id/heartbeat`]: { need: 'worker', kind: 'object', notFound: 'JOB_NOT_FOUND', setup: claimed, req: (fx, id) => ({ path: `${API}/jobs/${id}/heartbeat`, body: lease(fx) }) },
  [`POST ${API}/jobs/:id/progress`]: {
    need: 'worker',
    kind: 'object',
    notFound: 'JOB_NOT_FOUND',
    setup: claimed,
    req: (fx, id) => ({ path: `${API}/jobs/${id}/progress`, body: { ...lease(fx), phase: 'fetch', items_done: 1, items_total: 2 } }),
  },
  [`POST ${API}/jobs/:id/complete`]: {
    need: 'worker',
    kind: 'object',
    notFound: 'JOB_NOT_FOUND',
    setup: claimed,
    req: (fx, id) => ({ path: `${API}/jobs/${id}/complete`, body: { ...lease(fx), result: { ok: true } } }),
    untouched: async (owner, fx) => expect(await stateOf(owner, fx.id!)).toBe('running'),
  },
  [`POST ${API}/jobs/:id/fail`]: {
    need: 'worker',
    kind: 'object',
    notFound: 'JOB_NOT_FOUND',
    setup: claimed,
    req: (fx, id) => ({ path: `${API}/jobs/${id}/fail`, body: { ...lease(fx), error: { code: 'E_MX', message: 'no' }, retryable: false } }),
    untouched: async (owner, fx) => expect(await stateOf(owner, fx.id!)).toBe('running'),
  },
  [`POST ${API}/jobs/:id/cancel`]: {
    need: 'admin',
    kind: 'object',
    notFound: 'JOB_NOT_FOUND',
    setup: queued,
    req: (_, id) => ({ path: `${API}/jobs/${id}/cancel`, body: { reason: 'matrix' } }),
    untouched: async (owner, fx) => expect(await stateOf(owner, fx.id!)).toBe('queued'),
  },

  // Same name and host as the owner's source: the owner gets it back (200), another tenant a new one.
  [`POST ${API}/sources`]: { need: 'admin', kind: 'collection', setup: source, req: (fx) => ({ path: `${API}/sources`, body: { name: fx.name, host: `${fx.name}.example` } }) },
  [`GET ${API}/sources`]: { need: 'read', kind: 'collection', setup: source, req: () => ({ path: `${API}/sources` }) },
  [`GET ${API}/sources/:id`]: { need: 'read', kind: 'object', notFound: 'SOURCE_NOT_FOUND', setup: source, req: (_, id) => ({ path: `${API}/sources/${id}` }) },

  [`POST ${API}/throttles`]: {
    need: 'admin',
    kind: 'collection',
    setup: async (owner) => ({ ...(await throttle(owner)), secrets: [] }), // the caller names the host itself
    req: (fx) => ({ path: `${API}/throttles`, body: { host: fx.name, capacity: 9, refill_per_sec: 4 } }),
    untouched: async (owner, fx) => expect((await ledger.listThrottles(owner, fx.name))[0]).toMatchObject({ capacity: '3', refill_per_sec: '1' }),
  },
  // A worker's upstream 429 on a job: the job's source's host slows down (no host given).
  [`POST ${API}/throttles/report`]: {
    need: 'worker',
    kind: 'object',
    notFound: 'JOB_NOT_FOUND',
    setup: async (owner) => {
      const src = await source(owner);
      const host = `${src.name}.example`;
      await ledger.configureThrottle(owner, host, { capacity: 3, refillPerSec: 1 });
      return { ...(await queued(owner, { sourceId: src.id })), name: host };
    },
    req: (_, id) => ({ path: `${API}/throttles/report`, body: { status: 429, retry_after_seconds: 5, worker_id: 'mx-worker', job_id: id } }),
    untouched: async (owner, fx) => expect((await ledger.listThrottles(owner, fx.name))[0]).toMatchObject({ tokens: '3', refill_per_sec: '1', penalty_until: null }),
  },
  [`GET ${API}/throttles`]: { need: 'read', kind: 'collection', setup: throttle, req: () => ({ path: `${API}/throttles` }) },

  // The same pattern as the owner's signature: the owner updates its own, another tenant adds a new one.
  [`POST ${API}/signatures`]: {
    need: 'admin',
    kind: 'collection',
    setup: signature,
    req: (fx) => ({ path: `${API}/signatures`, body: { pattern: { error_code: fx.name }, outcome: { likely_cause: 'mx again' } } }),
    untouched: async (owner, fx) => expect((await ledger.getSignature(owner, fx.id!)).outcome).toMatchObject({ likely_cause: 'mx' }),
  },
  [`GET ${API}/signatures`]: { need: 'read', kind: 'collection', setup: signature, req: () => ({ path: `${API}/signatures` }) },
  [`GET ${API}/signatures/:id`]: { need: 'read', kind: 'object', notFound: 'SIGNATURE_NOT_FOUND', setup: signature, req: (_, id) => ({ path: `${API}/signatures/${id}` }) },
  [`POST ${API}/signatures/:id/retire`]: {
    need: 'admin',
    kind: 'object',
    notFound: 'SIGNATURE_NOT_FOUND',
    setup: signature,
    req: (_, id) => ({ path: `${API}/signatures/${id}/retire`, body: {} }),
    untouched: async (owner, fx) => expect((await ledger.getSignature(owner, fx.id!)).retired_at).toBeNull(),
  },

  [`GET ${API}/jobs`]: { need: 'read', kind: 'collection', setup: queued, req: (fx) => ({ path: `${API}/jobs?type=${fx.name}` }) },
  [`POST ${API}/jobs/:id/retry`]: {
    need: 'admin',
    kind: 'object',
    notFound: 'JOB_NOT_FOUND',
    setup: canceled,
    req: (_, id) => ({ path: `${API}/jobs/${id}/retry`, body: { reason: 'matrix' } }),
    untouched: async (owner, fx) => expect(await stateOf(owner, fx.id!)).toBe('canceled'),
  },
  [`POST ${API}/jobs/:id/prioritize`]: {
    need: 'admin',
    kind: 'object',
    notFound: 'JOB_NOT_FOUND',
    setup: queued,
    req: (_, id) => ({ path: `${API}/jobs/${id}/prioritize`, body: { priority: 7 } }),
    untouched: async (owner, fx) => expect((await ledger.getJob(owner, fx.id!)).priority).toBe(0),
  },
  [`POST ${API}/dead-letters/retry`]: {
    need: 'admin',
    kind: 'collection',
    setup: deadLetter,
    req: (fx) => ({ path: `${API}/dead-letters/retry`, body: { type: fx.name } }),
    untouched: async (owner, fx) => expect(await stateOf(owner, fx.id!)).toBe('dead_letter'),
  },

  // The console's overview: a dead-lettered type, a throttled host and a paused type of the owner's, none of another tenant's.
  [`GET ${API}/console/dashboard`]: {
    need: 'read',
    kind: 'collection',
    setup: async (o) => ({ secrets: [(await deadLetter(o)).name!, (await throttle(o)).name!, (await paused(o)).name!] }),
    req: () => ({ path: `${API}/console/dashboard` }),
  },
  [`GET ${API}/queues`]: { need: 'read', kind: 'collection', setup: paused, req: () => ({ path: `${API}/queues` }) },
  [`POST ${API}/queues/:type/pause`]: {
    need: 'admin',
    kind: 'collection',
    setup: async () => ({ name: uniq('mx-pause-') }),
    req: (fx) => ({ path: `${API}/queues/${fx.name}/pause`, body: { reason: 'matrix' } }),
    untouched: async (owner, fx) => expect(await isPaused(owner, fx.name!)).toBe(false),
  },
  [`POST ${API}/queues/:type/resume`]: {
    need: 'admin',
    kind: 'collection',
    setup: async (owner) => ({ ...(await paused(owner)), secrets: [] }), // the caller names the type itself
    req: (fx) => ({ path: `${API}/queues/${fx.name}/resume`, body: {} }),
    untouched: async (owner, fx) => expect(await isPaused(owner, fx.name!)).toBe(true),
  },

  [`POST ${API}/runs`]: { need: 'worker', kind: 'collection', req: () => ({ path: `${API}/runs`, body: {} }) },
  [`GET ${API}/runs/:id`]: { need: 'read', kind: 'object', notFound: 'RUN_NOT_FOUND', setup: run, req: (_, id) => ({ path: `${API}/runs/${id}` }) },
  // The console (issue 16): the page, its files and the next-action redirects are public; the
  // session API takes a token in the body (any caller may sign in with one) or the cookie.
  'GET /': { need: 'public', kind: 'collection', req: () => ({ path: '/' }) },
  'GET /console/:file': { need: 'public', kind: 'collection', req: () => ({ path: '/console/app.js' }) },
  'GET /jobs/:id': { need: 'public', kind: 'collection', status: 302, setup: queued, req: (_, id) => ({ path: `/jobs/${id}` }) },
  'GET /runs/:id': { need: 'public', kind: 'collection', status: 302, setup: run, req: (_, id) => ({ path: `/runs/${id}` }) },
  'POST /api/v1/console/session': {
    need: 'public',
    kind: 'collection',
    status: 201,
    setup: async (owner) => ({ name: (await createToken(db.pool, { tenant: owner, scope: 'read' })).token }),
    req: (fx) => ({ path: '/api/v1/console/session', body: { token: fx.name } }),
  },
  'GET /api/v1/console/session': { need: 'session', kind: 'collection', req: () => ({ path: '/api/v1/console/session' }) },
  'DELETE /api/v1/console/session': { need: 'session', kind: 'collection', req: () => ({ path: '/api/v1/console/session' }) },
  // The multiplexed stream, read as JSON (no Accept: text/event-stream): a foreign id is listed as absent.
  [`GET ${API}/stream/jobs`]: { need: 'read', kind: 'listed', setup: queued, req: (_, id) => ({ path: `${API}/stream/jobs?ids=${id}` }) },
  [`GET ${API}/runs/:id/jobs`]: { need: 'read', kind: 'object', notFound: 'RUN_NOT_FOUND', setup: run, req: (_, id) => ({ path: `${API}/runs/${id}/jobs` }) },
};

interface Reply {
  status: number;
  text: string;
}

/** A bearer token, or a console session (its cookie, and its CSRF token on state changes). */
type Cred = string | null | { cookie: string; csrf: string };

async function call(method: string, r: ReturnType<Row['req']>, token: Cred): Promise<Reply> {
  const auth: Record<string, string> =
    token === null ? {} : typeof token === 'string' ? { Authorization: `Bearer ${token}` } : { Cookie: token.cookie, ...(method === 'GET' ? {} : { 'X-CSRF-Token': token.csrf, Origin: srv.baseUrl }) };
  const headers: Record<string, string> = { ...auth, ...(r.headers ?? {}) };
  if (r.body !== undefined) headers['Content-Type'] = 'application/json';
  const res = await fetch(srv.baseUrl + r.path, { method, headers, redirect: 'manual', body: r.body === undefined ? undefined : JSON.stringify(r.body) });
  return { status: res.status, text: await res.text() };
}

/** At most `limit` at a time: parallel, without a thousand sockets at once on two cores. */
async function pooled<T>(tasks: Array<() => Promise<T>>, limit = 16): Promise<T[]> {
  const out: T[] = new Array(tasks.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: limit }, async () => {
      while (next < tasks.length) {
        const i = next++;
        out[i] = await tasks[i]!();
      }
    }),
  );
  return out;
}

const sessions: Record<string, Promise<{ cookie: string; csrf: string }>> = {};
/** Signs in with a token: the session's cookie and CSRF token. */
async function session(token: string): Promise<{ cookie: string; csrf: string }> {
  const res = await fetch(srv.baseUrl + '/api/v1/console/session', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ token }) });
  const b = (await res.json()) as { session: { csrf_token: string } };
  return { cookie: /^(okit_session=[^;]+)/.exec(res.headers.get('set-cookie')!)![1]!, csrf: b.session.csrf_token };
}

const errCode = (text: string) => {
  try {
    return (JSON.parse(text) as { error?: { code?: string } }).error?.code;
  } catch {
    return undefined;
  }
};

it('every route of the router has a row here, and every row a route', () => {
  const routes = srv.routes.map((r) => `${r.method} ${r.pattern}`);
  expect(new Set(routes).size).toBe(routes.length);
  expect([...routes].sort()).toEqual(Object.keys(ROWS).sort());
});

/** `session`: the same tenant and scope through a console session (cookie + CSRF) instead of the bearer token. */
type Caller = { label: string; token: string | null; tenant: Tenant | null; scope: TenantScope | 'none' | 'metrics'; session?: boolean };
const CALLERS: Caller[] = [
  { label: 'no token', token: null, tenant: null, scope: 'none' },
  { label: 'metrics', token: '', tenant: null, scope: 'metrics' },
  ...TENANTS.flatMap((t) => TENANT_SCOPES.map((s): Caller => ({ label: `${t}/${s}`, token: '', tenant: t, scope: s }))),
  // Console sessions (read and admin only: no worker sessions).
  ...TENANTS.flatMap((t) => (['read', 'admin'] as const).map((s): Caller => ({ label: `${t}/${s} session`, token: '', tenant: t, scope: s, session: true }))),
];

it('tenants × scopes × routes: allowed calls succeed, too small a scope is 403, a foreign object is 404 as if absent', async () => {
  const failures: string[] = [];
  const check = (cond: boolean, what: string) => {
    if (!cond) failures.push(what);
  };
  const tasks: Array<() => Promise<void>> = [];
  let allowedOwn = 0;
  let foreign404 = 0;
  let forbidden = 0;
  for (const [key, row] of Object.entries(ROWS)) {
    const method = key.slice(0, key.indexOf(' '));
    for (const c of CALLERS)
      for (const owner of TENANTS) {
        tasks.push(async () => {
          const bearer = c.scope === 'none' ? null : c.scope === 'metrics' ? metricsToken : tokens[c.tenant!][c.scope];
          // One session per caller, but a fresh one for logout (it ends the session it is sent with).
          const token: Cred = !c.session ? bearer : key === 'DELETE /api/v1/console/session' ? await session(bearer!) : await (sessions[c.label] ??= session(bearer!));
          const fx = row.setup ? await row.setup(owner) : {};
          const r = row.req(fx, fx.id ?? '');
          const got = await call(method, r, token);
          const where = `${key} as ${c.label} on ${owner}'s: ${got.status} ${got.text.slice(0, 160)}`;
          const foreign = c.tenant !== null && c.tenant !== owner;
          if (row.need === 'public') {
            check(got.status === (row.status ?? 200), where);
            return;
          }
          if (row.need === 'session') {
            if (c.session) check(got.status >= 200 && got.status < 300, `${where} (want 2xx with the cookie)`);
            else check(got.status === 401 && errCode(got.text) === 'SESSION_INVALID', `${where} (want 401 SESSION_INVALID)`);
            return;
          }
          if (row.need === 'metrics') {
            if (c.scope === 'metrics') check(got.status === 200, where);
            else check(got.status === 401 && errCode(got.text) === 'UNAUTHORIZED', `${where} (want 401 UNAUTHORIZED)`);
            return;
          }
          if (c.scope === 'none') {
            check(got.status === 401 && errCode(got.text) === 'UNAUTHORIZED', `${where} (want 401)`);
            return;
          }
          if (c.scope === 'metrics' || RANK[c.scope] < RANK[row.need]) {
            forbidden++;
            check(got.status === 403 && errCode(got.text) === 'FORBIDDEN', `${where} (want 403 FORBIDDEN)`);
            // The refusal says nothing about the object: the same bytes for an absent one.
            if (fx.id) {
              const absent = await call(method, row.req(fx, randomUUID()), token);
              check(absent.status === got.status && absent.text === got.text, `${where} (403 differs from the absent object's: ${absent.text})`);
            }
            if (row.untouched) await row.untouched(owner, fx).catch((e) => failures.push(`${where}: ${String(e)}`));
            return;
          }
          if (!foreign) {
            allowedOwn++;
            check(got.status >= 200 && got.status < 300, `${where} (want 2xx)`);
            if (row.kind !== 'object') for (const s of fx.secrets ?? []) check(got.text.includes(s), `${where} (the owner's answer lacks ${s})`);
            return;
          }
          if (row.kind === 'listed') {
            foreign404++;
            const absentId = randomUUID();
            const absent = await call(method, row.req(fx, absentId), token);
            check(got.status === 200, `${where} (want 200)`);
            check(absent.status === got.status && absent.text.replaceAll(absentId, 'ID') === got.text.replaceAll(fx.id!, 'ID'), `${where} (differs from absent: ${absent.text})`);
          } else if (row.kind === 'object') {
            foreign404++;
            const absentId = randomUUID();
            const absent = await call(method, row.req(fx, absentId), token);
            check(got.status === 404 && errCode(got.text) === row.notFound, `${where} (want 404 ${row.notFound})`);
            check(absent.status === got.status && absent.text.replaceAll(absentId, 'ID') === got.text.replaceAll(fx.id!, 'ID'), `${where} (differs from absent: ${absent.text})`);
          } else {
            check(got.status >= 200 && got.status < 300, `${where} (want 2xx)`);
            for (const s of fx.secrets ?? []) check(!got.text.includes(s), `${where} (shows the other tenant's ${s})`);
          }
          if (row.untouched) await row.untouched(owner, fx).catch((e) => failures.push(`${where}: ${String(e)}`));
        });
      }
  }
  await pooled(tasks);
  expect(failures).toEqual([]);
  // The matrix really ran each kind of case (a row table gone empty would pass the rest).
  expect(allowedOwn).toBeGreaterThan(30);
  expect(foreign404).toBeGreaterThan(20);
  expect(forbidden).toBeGreaterThan(30);
}, 120_000);
