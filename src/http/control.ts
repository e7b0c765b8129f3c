/**
 * The operator's control plane over HTTP (issue 12): sources, throttles, failure signatures,
 * job lists, retry / prioritize, queue pause and resume, runs. One route per operation; the
 * token fixes the tenant and the actor (`token:<id>`) recorded in the ledger. Scopes: read to
 * see, worker to create runs, admin to change anything else. Another tenant's source, run,
 * job or signature answers exactly as a missing one.
 */
import { OkitError } from '../errors.js';
import type { JobFilters, Ledger, RunStatus } from '../ledger/ledger.js';
import type { Snapshot } from '../ledger/types.js';
import * as v from '../ledger/validate.js';
import { etagOf } from '../signals/signal.js';
import { matchesEtag, parseWait, signalBody } from '../signals/handlers.js';
import { ANY_JOB, type Waiters } from '../signals/waiters.js';
import type { ClaimWaiters } from '../signals/claims.js';
import { readJson } from './body.js';
import type { Ctx, Router } from './router.js';
import { sendJson } from './send.js';
import type { Scope } from './tokens.js';

export interface ControlDeps {
  ledger: Ledger;
  waiters: Waiters;
  listenerReady(): boolean;
  fallbackPollMs: number;
  /** Parked claims with `wait`: a resumed type wakes its waiters in this process at once. */
  claims?: ClaimWaiters;
  maxBodyBytes: number;
  signalFor(ctx: Ctx): AbortSignal;
  authed(need: Scope, fn: (ctx: Ctx, tenant: string, actor: string) => Promise<void>): (ctx: Ctx) => Promise<void>;
}

/** Query parameters GET /jobs (and GET /runs/{id}/jobs) understand; any other is 400. */
const LIST_PARAMS = ['state', 'kind', 'type', 'run_id', 'source_id', 'error_code', 'created_after', 'created_before', 'updated_after', 'updated_before', 'sort', 'order', 'limit', 'cursor'];

export function jobFilters(q: URLSearchParams, allowed = LIST_PARAMS): JobFilters {
  for (const k of new Set(q.keys())) {
    if (!allowed.includes(k)) throw new OkitError('INVALID_INPUT', `${k}: unknown filter (known: ${allowed.join(', ')})`, { field: k });
    if (q.getAll(k).length > 1) throw new OkitError('INVALID_INPUT', `${k}: given more than once (a list is comma-separated)`, { field: k });
  }
  const g = (k: string) => q.get(k);
  const limit = g('limit');
  return {
    state: g('state'),
    kind: g('kind'),
    type: g('type'),
    runId: g('run_id'),
    sourceId: g('source_id'),
    errorCode: g('error_code'),
    createdAfter: g('created_after'),
    createdBefore: g('created_before'),
    updatedAfter: g('updated_after'),
    updatedBefore: g('updated_before'),
    sort: g('sort'),
    order: g('order'),
    limit: limit === null ? null : v.decimalArg(limit, 'limit', 1, 500),
    cursor: g('cursor'),
  };
}

function signalReply(ctx: Ctx, s: Snapshot, status = 200): void {
  const etag = etagOf(s);
  const text = `{"job_id":${JSON.stringify(s.job_id)},"etag":${JSON.stringify(etag)},"signal":${signalBody(s)}}`;
  ctx.res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': String(Buffer.byteLength(text)), ETag: etag });
  ctx.res.end(text);
}

const optText = (b: Record<string, unknown>, k: string) => (b[k] === null ? undefined : (b[k] as string | undefined));

export function addControlRoutes(r: Router, API: string, d: ControlDeps): void {
  const { ledger, authed } = d;
  const body = (ctx: Ctx) => readJson(ctx.req, d.maxBodyBytes);
  const jobId = (ctx: Ctx) => v.uuid(ctx.params.id, 'job_id');

  // ------------------------------------------------------------ sources
  r.add(
    'POST',
    `${API}/sources`,
    authed('admin', async (ctx, t) => {
      const b = await body(ctx);
      const { source, created } = await ledger.addSource(t, { name: b.name as string, host: b.host as string, id: optText(b, 'id') });
      sendJson(ctx.res, created ? 201 : 200, { source, created });
    }),
  );
  r.add('GET', `${API}/sources`, authed('read', async (ctx, t) => sendJson(ctx.res, 200, { sources: await ledger.listSources(t) })));
  r.add('GET', `${API}/sources/:id`, authed('read', async (ctx, t) => sendJson(ctx.res, 200, { source: await ledger.getSource(t, v.uuid(ctx.params.id, 'source_id')) })));

  // ------------------------------------------------------------ throttles
  r.add(
    'POST',
    `${API}/throttles`,
    authed('admin', async (ctx, t) => {
      const b = await body(ctx);
      const host = v.host(b.host);
      await ledger.configureThrottle(t, host, { capacity: b.capacity as number, refillPerSec: b.refill_per_sec as number });
      sendJson(ctx.res, 200, { bucket: (await ledger.listThrottles(t, host))[0] });
    }),
  );
  r.add('GET', `${API}/throttles`, authed('read', async (ctx, t) => sendJson(ctx.res, 200, { throttles: await ledger.listThrottles(t) })));

  // ------------------------------------------------------------ failure signatures
  r.add(
    'POST',
    `${API}/signatures`,
    authed('admin', async (ctx, t, actor) => {
      const b = await body(ctx);
      const { signature, created } = await ledger.addSignature(t, {
        pattern: b.pattern,
        outcome: b.outcome,
        confidence: b.confidence === null ? undefined : (b.confidence as number | undefined),
        actor,
      });
      sendJson(ctx.res, created ? 201 : 200, { signature, created });
    }),
  );
  r.add(
    'GET',
    `${API}/signatures`,
    authed('read', async (ctx, t) => {
      const inc = ctx.query.get('include_retired');
      if (inc !== null && inc !== 'true' && inc !== 'false') throw new OkitError('INVALID_INPUT', 'include_retired: must be true or false', { field: 'include_retired' });
      sendJson(ctx.res, 200, { signatures: await ledger.listSignatures(t, { includeRetired: inc === 'true' }) });
    }),
  );
  r.add('GET', `${API}/signatures/:id`, authed('read', async (ctx, t) => sendJson(ctx.res, 200, { signature: await ledger.getSignature(t, v.uuid(ctx.params.id, 'signature_id')) })));
  r.add(
    'POST',
    `${API}/signatures/:id/retire`,
    authed('admin', async (ctx, t, actor) => {
      const id = v.uuid(ctx.params.id, 'signature_id');
      await body(ctx);
      sendJson(ctx.res, 200, { signature: await ledger.retireSignature(t, id, actor) });
    }),
  );

  // ------------------------------------------------------------ jobs: list, control actions
  r.add('GET', `${API}/jobs`, authed('read', async (ctx, t) => sendJson(ctx.res, 200, await ledger.listJobs(t, jobFilters(ctx.query)))));
  r.add(
    'POST',
    `${API}/jobs/:id/retry`,
    authed('admin', async (ctx, t, actor) => {
      const id = jobId(ctx);
      const b = await body(ctx);
      signalReply(ctx, await ledger.retry(t, id, { actor, reason: optText(b, 'reason') }));
    }),
  );
  r.add(
    'POST',
    `${API}/jobs/:id/prioritize`,
    authed('admin', async (ctx, t, actor) => {
      const id = jobId(ctx);
      const b = await body(ctx);
      signalReply(ctx, await ledger.prioritize(t, id, { priority: b.priority as number, actor, reason: optText(b, 'reason') }));
    }),
  );
  r.add(
    'POST',
    `${API}/dead-letters/retry`,
    authed('admin', async (ctx, t, actor) => {
      const b = await body(ctx);
      const out = await ledger.retryDeadLetters(t, { type: b.type as string, limit: b.limit === null ? undefined : (b.limit as number | undefined), actor, reason: optText(b, 'reason') });
      sendJson(ctx.res, 200, {
        jobs: out.jobs.map(({ job, snapshot }) => ({ job, etag: etagOf(snapshot), signal: JSON.parse(signalBody(snapshot)) })),
        more: out.more,
      });
    }),
  );

  // ------------------------------------------------------------ queues
  r.add('GET', `${API}/queues`, authed('read', async (ctx, t) => sendJson(ctx.res, 200, { queues: await ledger.listQueues(t) })));
  for (const action of ['pause', 'resume'] as const)
    r.add(
      'POST',
      `${API}/queues/:type/${action}`,
      authed('admin', async (ctx, t, actor) => {
        const type = v.jobType(ctx.params.type);
        const b = await body(ctx);
        const input = { actor, reason: optText(b, 'reason') };
        const queue = action === 'pause' ? await ledger.pause(t, type, input) : await ledger.resume(t, type, input);
        // Other processes' waiters hear of a resume by the NOTIFY's `+type` hint (QueueOps.resume).
        if (action === 'resume' && queue.changed) d.claims?.wakeTypes(t, [type]);
        sendJson(ctx.res, 200, { queue });
      }),
    );

  // ------------------------------------------------------------ runs
  r.add(
    'POST',
    `${API}/runs`,
    authed('worker', async (ctx, t) => {
      const b = await body(ctx);
      const { run, created } = await ledger.createRun(t, { id: optText(b, 'id'), sourceId: optText(b, 'source_id') });
      sendJson(ctx.res, created ? 201 : 200, { run, created });
    }),
  );
  r.add(
    'GET',
    `${API}/runs/:id`,
    authed('read', async (ctx, t) => {
      const id = v.uuid(ctx.params.id, 'run_id');
      for (const k of ctx.query.keys()) if (k !== 'wait') throw new OkitError('INVALID_INPUT', `${k}: unknown parameter (GET /runs/{id} takes wait)`, { field: k });
      await runStatus(ctx, t, id, d);
    }),
  );
  r.add(
    'GET',
    `${API}/runs/:id/jobs`,
    authed('read', async (ctx, t) => {
      const id = v.uuid(ctx.params.id, 'run_id');
      const f = jobFilters(ctx.query, LIST_PARAMS.filter((k) => k !== 'run_id'));
      await ledger.getRun(t, id); // RUN_NOT_FOUND for a missing or foreign run
      sendJson(ctx.res, 200, await ledger.listJobs(t, { ...f, runId: id }));
    }),
  );
}

/** Between re-reads of a run woken by its tenant's changes, at least this long (a busy tenant wakes it often). */
const RUN_READ_GAP_MS = 100;

function runReply(ctx: Ctx, s: RunStatus, notModified: boolean): void {
  const headers = { ETag: s.etag, 'Cache-Control': 'private, max-age=1' };
  if (notModified) {
    ctx.res.writeHead(304, headers);
    ctx.res.end();
    return;
  }
  sendJson(ctx.res, 200, s, headers);
}

/** GET /runs/{id}[?wait=S] with If-None-Match: a long-poll woken by any change of the tenant's jobs, like a job's first signal. */
async function runStatus(ctx: Ctx, tenant: string, id: string, d: ControlDeps): Promise<void> {
  const waitS = parseWait(ctx.query);
  const inm = ctx.req.headers['if-none-match'];
  const abort = d.signalFor(ctx);
  const deadline = performance.now() + waitS * 1000;
  for (;;) {
    const armed = waitS > 0 ? d.waiters.arm(tenant, ANY_JOB) : null;
    let s: RunStatus;
    const readAt = performance.now();
    try {
      s = await d.ledger.getRun(tenant, id);
    } catch (e) {
      armed?.cancel();
      throw e;
    }
    const same = matchesEtag(inm, s.etag);
    const remaining = deadline - performance.now();
    if (!same || !armed || remaining <= 0 || abort.aborted) {
      armed?.cancel();
      if (!ctx.res.destroyed) runReply(ctx, s, same);
      return;
    }
    await armed.wait(d.listenerReady() ? remaining : Math.min(remaining, d.fallbackPollMs), abort);
    if (ctx.res.destroyed) return;
    const gap = RUN_READ_GAP_MS - (performance.now() - readAt);
    if (gap > 0 && !abort.aborted) await new Promise((r) => setTimeout(r, Math.min(gap, Math.max(0, deadline - performance.now()))));
  }
}
