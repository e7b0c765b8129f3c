/**
 * Routes of `okit serve`. The token decides the tenant; scopes: read < worker < admin.
 * Malformed ids are 400 (INVALID_INPUT); a missing or foreign job is 404 (JOB_NOT_FOUND).
 */
import { isOkitError, OkitError } from '../errors.js';
import type { ClaimedJob, EnqueueInput, Ledger } from '../ledger/ledger.js';
import type { Snapshot } from '../ledger/types.js';
import * as v from '../ledger/validate.js';
import { etagOf } from '../signals/signal.js';
import { acceptsEventStream, firstSignal, signalBody, stream, type SignalDeps } from '../signals/handlers.js';
import type { OkitMetrics } from '../metrics/metrics.js';
import { clientBatch, MAX_TELEMETRY_BODY_BYTES } from '../telemetry/events.js';
import { surfaceOf, type ServerTelemetry } from '../telemetry/server.js';
import { MAX_BATCH_BODY_BYTES, readJson } from './body.js';
import { claimWithWait, MAX_CLAIM_WAIT_SECONDS } from './claim.js';
import type { ClaimWaiters } from '../signals/claims.js';
import { addControlRoutes } from './control.js';
import { addDashboardRoute } from './dashboard.js';
import { toOkitError } from './errors.js';
import { Router, type Ctx } from './router.js';
import { addConsoleRoutes, type StaticFiles } from './console.js';
import { authenticateRequest, type ConsoleSessions } from './sessions.js';
import { multiStream } from '../signals/multi.js';
import { sendJson } from './send.js';
import type { Scope, TokenAuth } from './tokens.js';

export const API = '/api/v1/orchestrator';

export interface ApiDeps {
  ledger: Ledger;
  auth: TokenAuth;
  signals: SignalDeps;
  /** Is the database answering (DbHealth)? Routes that need it are 503 at once while it is not. */
  dbUp(): boolean;
  ready(): { ready: boolean; listener: boolean; db: boolean; shuttingDown: boolean };
  /** Aborted when the client goes away or the server shuts down. */
  signalFor(ctx: Ctx): AbortSignal;
  maxBodyBytes: number;
  /** Array bodies (POST /jobs with many jobs), at most (default MAX_BATCH_BODY_BYTES, 4 MiB). */
  maxBatchBodyBytes?: number;
  metrics: OkitMetrics;
  /** Absent when the server runs with telemetry off: no TTFS recording, no telemetry route. */
  telemetry?: ServerTelemetry;
  /** Console sessions behind the okit_session cookie (absent: bearer tokens only, no console routes). */
  sessions?: ConsoleSessions;
  /** The built console page (dist/console/). */
  files?: StaticFiles;
  /** Where claims with `wait` park until a job may be claimable (absent: `wait` is ignored). */
  claims?: ClaimWaiters;
}

const opt = <T>(v: T | undefined | null): T | undefined => (v === null ? undefined : v);

function objectField(x: unknown, field: string, shape: string): Record<string, unknown> {
  if (!x || typeof x !== 'object' || Array.isArray(x)) throw new OkitError('INVALID_INPUT', `${field}: must be an object ${shape}`, { field });
  return x as Record<string, unknown>;
}

function signalReply(ctx: Ctx, s: Snapshot): void {
  const etag = etagOf(s);
  const text = `{"job_id":${JSON.stringify(s.job_id)},"etag":${JSON.stringify(etag)},"signal":${signalBody(s)}}`;
  ctx.res.writeHead(200, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': String(Buffer.byteLength(text)), ETag: etag });
  ctx.res.end(text);
}

/** The Prometheus exposition (text format 0.0.4), never cached by anyone in between. */
export async function sendMetrics(ctx: Ctx, metrics: OkitMetrics): Promise<void> {
  const text = await metrics.exposition();
  ctx.res.writeHead(200, { 'Content-Type': metrics.contentType, 'Content-Length': String(Buffer.byteLength(text)), 'Cache-Control': 'no-store' });
  ctx.res.end(text); // node:http sends no body for HEAD
}

export function buildRouter(d: ApiDeps): Router {
  const r = new Router();
  // Routes that need the database are 503 at once while it is known not to answer; signal
  // reads (signalRoute) may still be answered from the cache or a last-known ETag.
  const authed = (need: Scope, fn: (ctx: Ctx, tenant: string, actor: string) => Promise<void>) => async (ctx: Ctx) => {
    const p = await authenticateRequest(ctx.req, d.auth, d.sessions, need);
    if (!d.dbUp()) throw new OkitError('DB_UNAVAILABLE', 'the database is not answering; retry shortly');
    await fn(ctx, p.tenant, p.actor);
  };
  // A first-signal request answered with an error is a first signal the user did not get.
  const signalRoute = (fn: (ctx: Ctx, tenant: string, principal: string) => Promise<void>) => async (ctx: Ctx) => {
    ctx.t0 = performance.now();
    let tenant: string | null = null;
    try {
      const who = await authenticateRequest(ctx.req, d.auth, d.sessions, 'read');
      tenant = who.tenant;
      await fn(ctx, tenant, who.principal);
    } catch (e) {
      d.telemetry?.answerError(surfaceOf(ctx.req), tenant, toOkitError(e).code);
      throw e;
    }
  };
  const body = (ctx: Ctx) => readJson(ctx.req, d.maxBodyBytes);
  const id = (ctx: Ctx) => v.uuid(ctx.params.id, 'job_id');
  // The lease holder's calls present the claim's lease_token: a stale process that shares
  // the worker id (an earlier attempt) is LEASE_NOT_HELD.
  const lease = (b: Record<string, unknown>) => ({ workerId: v.workerId(b.worker_id), leaseToken: v.leaseToken(b.lease_token) });

  r.add('GET', '/healthz', async (ctx) => sendJson(ctx.res, 200, { ok: true }));
  r.add('GET', '/readyz', async (ctx) => {
    const s = d.ready();
    sendJson(ctx.res, s.ready ? 200 : 503, s, { 'Cache-Control': 'no-store' });
  });

  r.add('GET', `${API}/jobs/:id/first-signal`, signalRoute((ctx, t) => firstSignal(ctx, t, d.signals, d.signalFor(ctx))));
  r.add('GET', `${API}/stream/jobs/:id/first-signal`, signalRoute(async (ctx, t, who) => {
      // An SSE stream holds a slot (per session or token, server-wide) while it is open.
      const release = acceptsEventStream(ctx.req.headers.accept) ? d.signals.jobStreams?.acquire(who) : undefined;
      try {
        await stream(ctx, t, d.signals, d.signalFor(ctx));
      } finally {
        release?.();
      }
    }));
  // Many jobs (?ids=…, ≤ 500) or a run's (?run=…) on one SSE connection (src/signals/multi.ts).
  r.add('GET', `${API}/stream/jobs`, signalRoute((ctx, t, who) => multiStream(ctx, t, d.signals, d.ledger, d.signalFor(ctx), who)));

  // Surfaces report their time to first signal here (read scope, batched, bounded).
  const telemetry = d.telemetry;
  if (telemetry)
    r.add(
      'POST',
      `${API}/telemetry/ttfs`,
      authed('read', async (ctx, t) => {
        const events = clientBatch(await readJson(ctx.req, Math.min(d.maxBodyBytes, MAX_TELEMETRY_BODY_BYTES)));
        sendJson(ctx.res, 202, await telemetry.report(t, events));
      }),
    );

  // Only a metrics token scrapes: a tenant's token is no credential here (401, not 403).
  r.add('GET', '/metrics', async (ctx) => {
    await d.auth.authenticate(ctx.req.headers.authorization, 'metrics').catch((e) => {
      throw isOkitError(e) && e.code === 'FORBIDDEN' ? new OkitError('UNAUTHORIZED', '/metrics needs a metrics-scope token (okit tokens create --scope metrics)') : e;
    });
    await sendMetrics(ctx, d.metrics);
  });

  r.add('GET', `${API}/jobs/:id`, authed('read', async (ctx, t) => sendJson(ctx.res, 200, { job: await d.ledger.getJob(t, id(ctx)) })));
  r.add('GET', `${API}/jobs/:id/history`, authed('read', async (ctx, t) => sendJson(ctx.res, 200, { history: await d.ledger.history(t, id(ctx)) })));

  const enqueueInput = (b: Record<string, unknown>): EnqueueInput => ({
    type: b.type as string,
    payload: b.payload,
    priority: opt(b.priority as number),
    maxAttempts: opt(b.max_attempts as number),
    idempotencyKey: opt(b.idempotency_key as string),
    notBefore: opt(b.not_before as string),
    sourceId: opt(b.source_id as string),
    runId: opt(b.run_id as string),
  });
  r.add(
    'POST',
    `${API}/jobs`,
    authed('worker', async (ctx, t) => {
      const b = await readJson(ctx.req, d.maxBodyBytes, d.maxBatchBodyBytes ?? MAX_BATCH_BODY_BYTES);
      if (!Array.isArray(b)) {
        const { job, created } = await d.ledger.enqueue(t, enqueueInput(b));
        return sendJson(ctx.res, created ? 201 : 200, { job, created });
      }
      // An array: up to 1,000 jobs in one transaction, all or none; 201 when any was created.
      const items = b.map((x, i) => {
        if (!x || typeof x !== 'object' || Array.isArray(x)) throw new OkitError('INVALID_INPUT', `jobs[${i}]: must be an object`, { field: `jobs[${i}]` });
        return enqueueInput(x as Record<string, unknown>);
      });
      const out = await d.ledger.enqueueMany(t, items);
      sendJson(ctx.res, out.some((x) => x.created) ? 201 : 200, { jobs: out.map(({ job, created }) => ({ job, created })) });
    }),
  );

  r.add(
    'POST',
    `${API}/workers/claim`,
    authed('worker', async (ctx, t) => {
      const b = await body(ctx);
      const input = { workerId: b.worker_id as string, types: b.types as string[], leaseSeconds: opt(b.lease_seconds as number) };
      const reply = (c: ClaimedJob) => ({ job: c.job, lease_expires_at: c.leaseExpiresAt, attempt: c.attempt, lease_token: c.leaseToken });
      // `wait` (seconds, ≤ 30): when nothing is claimable now, wait for an enqueue, retry, lease
      // expiry or throttle refill of these types to wake the claim (src/signals/claims.ts).
      const wait = b.wait == null ? 0 : v.num(b.wait, 'wait', 0, MAX_CLAIM_WAIT_SECONDS);
      const many = b.limit != null;
      const got = await claimWithWait(d.ledger, d.claims, t, { ...input, limit: many ? (b.limit as number) : 1 }, wait, d.signalFor(ctx), ctx.res);
      // With `limit`, up to that many jobs in one transaction: { jobs: [...] } (maybe empty).
      if (many) return sendJson(ctx.res, 200, { jobs: got.map(reply) });
      sendJson(ctx.res, 200, got[0] ? reply(got[0]) : { job: null });
    }),
  );

  r.add(
    'POST',
    `${API}/jobs/:id/heartbeat`,
    authed('worker', async (ctx, t) => {
      const jobId = id(ctx);
      const b = await body(ctx);
      const h = await d.ledger.heartbeat(t, jobId, lease(b), opt(b.lease_seconds as number));
      sendJson(ctx.res, 200, { job_id: jobId, lease_expires_at: h.leaseExpiresAt });
    }),
  );

  r.add(
    'POST',
    `${API}/jobs/:id/progress`,
    authed('worker', async (ctx, t) => {
      const jobId = id(ctx);
      const b = await body(ctx);
      const s = await d.ledger.progress(t, jobId, lease(b), {
        phase: b.phase as string,
        summary: opt(b.summary as string),
        itemsDone: opt(b.items_done as number),
        itemsTotal: opt(b.items_total as number),
      });
      signalReply(ctx, s);
    }),
  );

  r.add(
    'POST',
    `${API}/jobs/:id/complete`,
    authed('worker', async (ctx, t) => {
      const jobId = id(ctx);
      const b = await body(ctx);
      signalReply(ctx, await d.ledger.complete(t, jobId, lease(b), b.result));
    }),
  );

  r.add(
    'POST',
    `${API}/jobs/:id/fail`,
    authed('worker', async (ctx, t) => {
      const jobId = id(ctx);
      const b = await body(ctx);
      if (!b.error || typeof b.error !== 'object' || Array.isArray(b.error))
        throw new OkitError('INVALID_INPUT', 'error: must be an object {"code", "message"}', { field: 'error' });
      const err = b.error as Record<string, unknown>;
      if (b.retryable !== undefined && typeof b.retryable !== 'boolean') throw new OkitError('INVALID_INPUT', 'retryable: must be a boolean', { field: 'retryable' });
      // `upstream`: the 429/503 that caused this; its host's bucket is penalised in the same transaction.
      const up = b.upstream == null ? undefined : objectField(b.upstream, 'upstream', '{"status", "retry_after_seconds"?, "host"?}');
      signalReply(
        ctx,
        await d.ledger.fail(t, jobId, lease(b), {
          code: err.code as string,
          message: err.message as string,
          retryable: b.retryable as boolean | undefined,
          upstream: up && { status: up.status as number, retryAfterSeconds: opt(up.retry_after_seconds as number), host: opt(up.host as string) },
        }),
      );
    }),
  );

  // A worker saw an upstream throttle it (429, 503, ...): slow that host's bucket; answers the bucket now.
  r.add(
    'POST',
    `${API}/throttles/report`,
    authed('worker', async (ctx, t) => {
      const b = await body(ctx);
      if (b.status == null) throw new OkitError('INVALID_INPUT', 'status: is required (the HTTP status the upstream answered)', { field: 'status' });
      const bucket = await d.ledger.reportThrottle(t, (b.host ?? null) as string | null, {
        status: b.status as number,
        retryAfterSeconds: opt(b.retry_after_seconds as number),
        workerId: v.workerId(b.worker_id),
        jobId: b.job_id == null ? null : v.uuid(b.job_id, 'job_id'),
      });
      sendJson(ctx.res, 200, { bucket });
    }),
  );

  r.add(
    'POST',
    `${API}/jobs/:id/cancel`,
    authed('admin', async (ctx, t, actor) => {
      const jobId = id(ctx);
      const b = await body(ctx);
      signalReply(ctx, await d.ledger.cancel(t, jobId, { actor, reason: opt(b.reason as string) }));
    }),
  );

  addDashboardRoute(r, API, d.ledger, authed);
  if (d.sessions && d.files) addConsoleRoutes(r, { sessions: d.sessions, files: d.files, maxBodyBytes: d.maxBodyBytes, dbUp: d.dbUp });

  addControlRoutes(r, API, {
    ledger: d.ledger,
    waiters: d.signals.waiters,
    listenerReady: d.signals.listenerReady,
    fallbackPollMs: d.signals.fallbackPollMs,
    claims: d.claims,
    maxBodyBytes: d.maxBodyBytes,
    signalFor: d.signalFor,
    authed,
  });
  return r;
}
