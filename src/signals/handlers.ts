/**
 * The first-signal endpoints: plain GET with ETag/304, long-poll (`?wait=S`, S ≤ 30) and SSE.
 * Every wake re-reads; every wait is bounded; while the LISTEN connection is down, waits fall
 * back to re-reading every `fallbackPollMs` so nothing depends on a notification arriving.
 */
import type { StreamSlots } from './slots.js';
import type { ServerResponse } from 'node:http';
import { OkitError } from '../errors.js';
import * as v from '../ledger/validate.js';
import type { Ctx } from '../http/router.js';
import { serverTiming, surfaceOf, type ServerTelemetry } from '../telemetry/server.js';
import { canonicalize } from '../util/canonical.js';
import type { Snapshot } from '../ledger/types.js';
import { signalOf } from './signal.js';
import { isDbUnavailable, within } from '../db/errors.js';
import { isTerminal, type Current, type SignalStore } from './store.js';
import type { Waiters } from './waiters.js';
import type { Live } from './live.js';

export const CACHE_CONTROL = 'private, max-age=1, stale-while-revalidate=5';
export const MAX_WAIT_SECONDS = 30;

export interface SignalDeps {
  store: SignalStore;
  waiters: Waiters;
  listenerReady(): boolean;
  shutdown: AbortSignal;
  keepAliveMs: number;
  fallbackPollMs: number;
  sseRetryMs: number;
  /** A long-poll is answered at most this long after its deadline, whatever the database does. */
  readGraceMs?: number;
  /** How old a last-known ETag may be to answer a long-poll 304 while the database does not answer. */
  lastKnownMaxAgeMs?: number;
  /** TTFS telemetry and metrics; absent when the server runs with telemetry off. */
  telemetry?: ServerTelemetry;
  /** Caps on open multiplexed streams (per session or token, server-wide); absent: no cap. */
  streams?: StreamSlots;
  /** The same for per-job SSE streams (higher caps: each is light, but not free). */
  jobStreams?: StreamSlots;
  /** Pending long-polls and open SSE streams, for okit_waiters. */
  waiting: { long_poll: number; sse: number };
}

/** `If-None-Match` may list several tags, or `*`; weak tags compare by their opaque part. */
export function matchesEtag(header: string | undefined, etag: string): boolean {
  if (!header) return false;
  const h = header.trim();
  if (h === '*') return true;
  return h.split(',').some((t) => t.trim().replace(/^W\//, '') === etag);
}

export function parseWait(q: URLSearchParams): number {
  const raw = q.get('wait');
  if (raw === null || raw === '') return 0;
  const s = Number(raw);
  if (!/^\d+(\.\d+)?$/.test(raw) || !Number.isFinite(s) || s > MAX_WAIT_SECONDS)
    throw new OkitError('INVALID_INPUT', `wait: must be a number of seconds from 0 to ${MAX_WAIT_SECONDS}`, { field: 'wait' });
  return s;
}

/**
 * The body bytes of a signal: the seed's field order at the top, nested objects in RFC 8785
 * key order, so that one ETag always means the same bytes whether the snapshot came from its
 * row (jsonb reorders keys) or was projected on the fly (cold_start).
 */
export function signalBody(s: Snapshot, live?: Live): string {
  const g = signalOf(s);
  const fields: Array<[string, unknown]> = [
    ['kind', g.kind],
    ['phase', g.phase],
    ['summary', g.summary],
    ['eta_seconds', g.eta_seconds],
    ['last_known_outcome', g.last_known_outcome],
    ['next_actions', g.next_actions],
    ['diagnostics', g.diagnostics],
    // Read-time, beside the snapshot's fields (docs/eta.md): replay compares the fields above, never this.
    ...(live ? [['live', live] as [string, unknown]] : []),
  ];
  return `{${fields.map(([k, v]) => `${JSON.stringify(k)}:${canonicalize(v)}`).join(',')}}`;
}

function signalHeaders(c: Current, shuttingDown: boolean): Record<string, string> {
  return {
    ETag: c.etag,
    'Cache-Control': CACHE_CONTROL,
    'X-Signal-Source': c.source,
    Vary: 'Authorization, Cookie, Accept',
    ...(shuttingDown ? { Connection: 'close' } : {}),
  };
}

/**
 * The signal's JSON text, made once per read value: one NOTIFY wakes every watcher of a job
 * and they all share the same `Current` (one cached read), so they share its text too.
 */
const texts = new WeakMap<Current, string>();
export function signalText(c: Current): string {
  let t = texts.get(c);
  if (t === undefined) texts.set(c, (t = signalBody(c.snapshot, c.live)));
  return t;
}

function send(res: ServerResponse, c: Current, notModified: boolean, shuttingDown: boolean, timing: string | null): void {
  const headers = signalHeaders(c, shuttingDown);
  if (timing) headers['Server-Timing'] = timing;
  if (notModified) {
    res.writeHead(304, headers);
    res.end();
    return;
  }
  const text = signalText(c);
  res.writeHead(200, { ...headers, 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': String(Buffer.byteLength(text)) });
  res.end(text);
}

/**
 * The answer of a long-poll whose database did not answer in time: 304 if the client holds
 * the ETag this server last read for the job (recently enough), else 503.
 */
function answerStale(ctx: Ctx, tenant: string, jobId: string, inm: string | undefined, deps: SignalDeps): void {
  const last = deps.store.lastKnown(tenant, jobId);
  if (last && performance.now() - last.at <= (deps.lastKnownMaxAgeMs ?? 60_000) && matchesEtag(inm, last.etag)) {
    ctx.res.writeHead(304, {
      ETag: last.etag,
      'Cache-Control': CACHE_CONTROL,
      'X-Signal-Source': 'last_known',
      Vary: 'Authorization, Cookie, Accept',
      ...(deps.shutdown.aborted ? { Connection: 'close' } : {}),
    });
    ctx.res.end();
    return;
  }
  throw new OkitError('DB_UNAVAILABLE', 'the database did not answer within the wait; retry shortly');
}

/**
 * GET …/jobs/{id}/first-signal[?wait=S] with optional If-None-Match. A long-poll answers by
 * its deadline (S + jitter ≤ S/16, plus readGraceMs) even when the database is stuck: each
 * read is raced against the deadline, and a read that fails for want of a database is retried
 * every fallbackPollMs until then.
 */
export async function firstSignal(ctx: Ctx, tenant: string, deps: SignalDeps, signal: AbortSignal): Promise<void> {
  const jobId = v.uuid(ctx.params.id, 'job_id');
  const waitS = parseWait(ctx.query);
  const inm = ctx.req.headers['if-none-match'];
  const t0 = ctx.t0 ?? performance.now();
  const tel = deps.telemetry;
  const surface = tel ? surfaceOf(ctx.req) : 'api';
  const info = { hit: false };
  // Consul-style jitter (≤ wait/16) so that many clients do not re-poll in lockstep.
  const deadline = performance.now() + waitS * 1000 * (1 + Math.random() / 16);
  const grace = deps.readGraceMs ?? 250;
  for (let reads = 1; ; reads++) {
    const armed = waitS > 0 ? deps.waiters.arm(tenant, jobId) : null;
    let cur: Current | undefined;
    try {
      const read = deps.store.read(tenant, jobId, info);
      cur = armed ? await within(read, deadline + grace - performance.now()) : await read;
    } catch (e) {
      if (!armed || !isDbUnavailable(e)) {
        armed?.cancel();
        throw e;
      }
    }
    const remaining = deadline - performance.now();
    if (!cur) {
      // Only a long-poll gets here: the database did not answer (in time).
      if (remaining <= 0 || signal.aborted || ctx.res.destroyed) {
        armed!.cancel();
        if (ctx.res.destroyed) return;
        return answerStale(ctx, tenant, jobId, inm, deps);
      }
      deps.waiting.long_poll++;
      try {
        await armed!.wait(Math.min(remaining, deps.fallbackPollMs), signal);
      } finally {
        deps.waiting.long_poll--;
      }
      continue;
    }
    const same = matchesEtag(inm, cur.etag);
    if (!same || !armed || remaining <= 0 || signal.aborted) {
      armed?.cancel();
      if (ctx.res.destroyed) return;
      const ms = performance.now() - t0;
      send(ctx.res, cur, same, deps.shutdown.aborted, tel && surface !== 'api' && reads === 1 ? serverTiming(ms, info.hit) : null);
      tel?.answer(tenant, surface, cur, info.hit, ms, !same, reads === 1, inm === undefined);
      return;
    }
    const bound = deps.listenerReady() ? remaining : Math.min(remaining, deps.fallbackPollMs);
    deps.waiting.long_poll++;
    try {
      await armed.wait(bound, signal);
    } finally {
      deps.waiting.long_poll--;
    }
    if (ctx.res.destroyed) return;
  }
}

export function acceptsEventStream(accept: string | undefined): boolean {
  return /(^|,)\s*text\/event-stream\s*(;|,|$)/i.test(accept ?? '');
}

/** Starts an SSE response (headers, then `retry:`); `lastWrite` is when it last wrote, for keep-alives. */
export function openEventStream(res: ServerResponse, retryMs: number, headers: Record<string, string> = {}): { write(s: string): void; lastWrite: number } {
  res.writeHead(200, {
    'Content-Type': 'text/event-stream; charset=utf-8',
    'Cache-Control': 'no-cache, no-transform',
    Connection: 'keep-alive',
    'X-Accel-Buffering': 'no',
    ...headers,
  });
  res.flushHeaders();
  const out = {
    lastWrite: performance.now(),
    write(s: string) {
      res.write(s);
      out.lastWrite = performance.now();
    },
  };
  out.write(`retry: ${retryMs}\n\n`);
  return out;
}

/** GET …/stream/jobs/{id}/first-signal: SSE, or long-poll for clients that do not accept it. */
export async function stream(ctx: Ctx, tenant: string, deps: SignalDeps, signal: AbortSignal): Promise<void> {
  if (!acceptsEventStream(ctx.req.headers.accept)) return firstSignal(ctx, tenant, deps, signal);
  const jobId = v.uuid(ctx.params.id, 'job_id');
  const lastHeader = ctx.req.headers['last-event-id'];
  let sent: string | null = (Array.isArray(lastHeader) ? lastHeader[0] : lastHeader) ?? ctx.query.get('last_event_id');
  const t0 = ctx.t0 ?? performance.now();
  const tel = deps.telemetry;
  const surface = tel ? surfaceOf(ctx.req) : 'api';
  const resumed = sent !== null;
  const info = { hit: false };
  let armed = deps.waiters.arm(tenant, jobId);
  let cur: Current;
  try {
    cur = await deps.store.read(tenant, jobId, info); // errors here are still plain JSON 4xx/503
  } catch (e) {
    armed.cancel();
    throw e;
  }
  const res = ctx.res;
  if (sent === cur.etag && isTerminal(cur)) {
    // The client already holds the final event: 204 tells EventSource to stop reconnecting.
    armed.cancel();
    res.writeHead(204, { 'Cache-Control': 'no-store' });
    res.end();
    return;
  }
  const out = openEventStream(res, deps.sseRetryMs, { 'X-Signal-Source': cur.source });
  const write = out.write;
  deps.waiting.sse++;
  let events = 0;
  let initial = true; // cur is still the stream's first read
  try {
    for (;;) {
      if (cur.etag !== sent) {
        const done = isTerminal(cur);
        write(`id: ${cur.etag}\nevent: ${done ? 'done' : 'signal'}\ndata: ${signalText(cur)}\n\n`);
        sent = cur.etag;
        events++;
        tel?.answer(tenant, surface, cur, info.hit, performance.now() - t0, true, initial, !resumed && initial);
        if (done) return;
      }
      if (signal.aborted || res.destroyed) return;
      const sinceWrite = performance.now() - out.lastWrite;
      const bound = Math.min(Math.max(0, deps.keepAliveMs - sinceWrite), deps.listenerReady() ? 5000 : deps.fallbackPollMs);
      await armed.wait(bound, signal);
      initial = false;
      if (signal.aborted || res.destroyed) return;
      if (performance.now() - out.lastWrite >= deps.keepAliveMs) write(': keep-alive\n\n');
      armed = deps.waiters.arm(tenant, jobId);
      try {
        // Bounded, so that keep-alives stay on time while the database is stuck.
        cur = (await within(deps.store.read(tenant, jobId, info), deps.keepAliveMs)) ?? cur;
      } catch {
        // Database away: keep the stream, try again after the next bounded wait.
      }
    }
  } finally {
    deps.waiting.sse--;
    armed.cancel();
    res.end();
  }
}
