/**
 * Routes of `okit serve`. The token decides the tenant; scopes: read < worker < admin.
 * Malformed ids are 400 (INVALID_INPUT); a missing or foreign job is 404 (JOB_NOT_FOUND).
 */
import { OkitError } from '../errors.js';
import type { Ledger } from '../ledger/ledger.js';
import type { Snapshot } from '../ledger/types.js';
import * as v from '../ledger/validate.js';
import { etagOf } from '../signals/projection.js';
import { firstSignal, signalBody, stream, type SignalDeps } from '../signals/handlers.js';
import { readJson } from './body.js';
import { Router, type Ctx } from './router.js';
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
}

const opt = <T>(v: T | undefined | null): T | undefined => (v === null ? undefined : v);

function signalReply(ctx: Ctx, s: Snapshot): void {
  const etag = etagOf(s);
  const text = `{"job_id":${JSON.stringify(s.job_id)},"etag":${JSON.stringify(etag)},"signal":${signalBody(s)}}`;
  ctx.res.writeHead(200, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': String(Buffer.byteLength(text)), ETag: etag });
  ctx.res.end(text);
}

export function buildRouter(d: ApiDeps): Router {
  const r = new Router();
  // Signal reads may be answered from the cache or a last-known ETag; every other route
  // needs the database and is 503 at once while it is known not to answer.
  const authedSignal = (need: Scope, fn: (ctx: Ctx, tenant: string, actor: string) => Promise<void>) => async (ctx: Ctx) => {
    const p = await d.auth.authenticate(ctx.req.headers.authorization, need);
    await fn(ctx, p.tenant, `token:${p.tokenId}`);
  };
  const authed = (need: Scope, fn: (ctx: Ctx, tenant: string, actor: string) => Promise<void>) =>
    authedSignal(need, async (ctx, tenant, actor) => {
      if (!d.dbUp()) throw new OkitError('DB_UNAVAILABLE', 'the database is not answering; retry shortly');
      await fn(ctx, tenant, actor);
    });
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

  r.add('GET', `${API}/jobs/:id/first-signal`, authedSignal('read', (ctx, t) => firstSignal(ctx, t, d.signals, d.signalFor(ctx))));
  r.add('GET', `${API}/stream/jobs/:id/first-signal`, authedSignal('read', (ctx, t) => stream(ctx, t, d.signals, d.signalFor(ctx))));

  r.add('GET', `${API}/jobs/:id`, authed('read', async (ctx, t) => sendJson(ctx.res, 200, { job: await d.ledger.getJob(t, id(ctx)) })));
  r.add('GET', `${API}/jobs/:id/history`, authed('read', async (ctx, t) => sendJson(ctx.res, 200, { history: await d.ledger.history(t, id(ctx)) })));

  r.add(
    'POST',
    `${API}/jobs`,
    authed('worker', async (ctx, t) => {
      const b = await body(ctx);
      const { job, created } = await d.ledger.enqueue(t, {
        type: b.type as string,
        payload: b.payload,
        priority: opt(b.priority as number),
        maxAttempts: opt(b.max_attempts as number),
        idempotencyKey: opt(b.idempotency_key as string),
        notBefore: opt(b.not_before as string),
        sourceId: opt(b.source_id as string),
        runId: opt(b.run_id as string),
      });
      sendJson(ctx.res, created ? 201 : 200, { job, created });
    }),
  );

  r.add(
    'POST',
    `${API}/workers/claim`,
    authed('worker', async (ctx, t) => {
      const b = await body(ctx);
      const c = await d.ledger.claim(t, { workerId: b.worker_id as string, types: b.types as string[], leaseSeconds: opt(b.lease_seconds as number) });
      sendJson(ctx.res, 200, c ? { job: c.job, lease_expires_at: c.leaseExpiresAt, attempt: c.attempt, lease_token: c.leaseToken } : { job: null });
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
      signalReply(
        ctx,
        await d.ledger.fail(t, jobId, lease(b), { code: err.code as string, message: err.message as string, retryable: b.retryable as boolean | undefined }),
      );
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
  return r;
}
