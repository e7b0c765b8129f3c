/**
 * GET …/stream/jobs?ids=<uuid>,… | ?run=<run id>: the first signals of many jobs on one SSE
 * connection (issue 16), so that a page following 200 jobs holds one connection, not 200.
 *
 * The resume cursor is the tenant's ledger position. Positions are taken under the tenant's
 * head-row lock held to COMMIT (src/ledger/writer.ts), so they are in commit order and a read
 * sees a prefix of them. Each read asks for the listed jobs whose latest history row lies past
 * the cursor and sends them in position order, each event's `id:` being its own position. So
 * after an event with id P the client holds, for every listed job, its state as of some row
 * ≤ P at least, and nothing past P: resuming from P (Last-Event-ID) sends exactly the jobs
 * changed after it, once each — no gap, no repeat. A job that changes several times between
 * two reads is sent once, as it is now (its intermediate states are in /jobs/{id}/history).
 *
 * Waking: one persistent waiter per listed job (a run's stream: one on the tenant's ANY_JOB),
 * so a NOTIFY re-reads at once; reads are at least READ_GAP_MS apart (coalescing a busy
 * tenant's wakes), and every wait is bounded (5 s; the fallback poll while LISTEN is down),
 * because NOTIFY is a hint and the table the truth. Memory per stream: its id list, its waiters
 * and at most MAX_BUFFERED_BYTES of unsent output (a client that does not read is cut off and
 * resumes by Last-Event-ID).
 */
import { OkitError } from '../errors.js';
import { within } from '../db/errors.js';
import type { Ledger } from '../ledger/ledger.js';
import { SNAPSHOT_COLUMNS, toSnapshot } from '../ledger/rows.js';
import type { Snapshot } from '../ledger/types.js';
import * as v from '../ledger/validate.js';
import type { Ctx } from '../http/router.js';
import { acceptsEventStream, openEventStream, signalBody, type SignalDeps } from './handlers.js';
import { ANY_JOB } from './waiters.js';

/** Ids one stream may follow; more is 400 TOO_MANY_IDS. */
export const MAX_STREAM_IDS = 500;
/** Rows per read: a run with more changed jobs is sent in pages of this many. */
export const STREAM_PAGE_ROWS = 500;
/** Between two reads of a woken stream, at least this long. */
export const READ_GAP_MS = 250;
/** Output the client has not taken yet, at most; past it the stream ends (the client resumes). */
export const MAX_BUFFERED_BYTES = 1024 * 1024;
const PARAMS = ['ids', 'run', 'last_event_id'];
/** The stream's first read (before any byte is sent) answers or is 503 within this. */
const FIRST_READ_MS = 5000;

export type Selection = { ids: string[] } | { run: string };

export function streamSelection(q: URLSearchParams): Selection {
  for (const k of new Set(q.keys())) {
    if (!PARAMS.includes(k)) throw new OkitError('INVALID_INPUT', `${k}: unknown parameter (the stream takes ids, run, last_event_id)`, { field: k });
    if (q.getAll(k).length > 1) throw new OkitError('INVALID_INPUT', `${k}: given more than once (ids are comma-separated)`, { field: k });
  }
  const ids = q.get('ids');
  const run = q.get('run');
  if ((ids === null) === (run === null)) throw new OkitError('INVALID_INPUT', 'give either ids=<job id>,<job id>,… or run=<run id>', { field: 'ids' });
  if (run !== null) return { run: v.uuid(run, 'run') };
  const list = ids!.split(',');
  if (list.length > MAX_STREAM_IDS) throw new OkitError('TOO_MANY_IDS', `ids: at most ${MAX_STREAM_IDS} job ids per stream (got ${list.length}); open another stream or follow a run`, { limit: MAX_STREAM_IDS });
  for (const id of list) v.uuid(id, 'ids');
  return { ids: [...new Set(list)] };
}

/** A cursor this server gave out: a ledger position (decimal). */
export function parseCursor(raw: string | null | undefined): bigint {
  if (raw === null || raw === undefined || raw === '') return 0n;
  if (!/^\d{1,18}$/.test(raw)) throw new OkitError('INVALID_INPUT', 'Last-Event-ID: not a cursor of this stream (a decimal ledger position)', { field: 'last_event_id' });
  return BigInt(raw);
}

interface Row {
  snapshot: Snapshot;
  pos: bigint;
}

/** The listed jobs (of this tenant only) whose latest history row lies past `after`, in position order. */
async function changedSince(ledger: Ledger, tenant: string, sel: Selection, after: bigint): Promise<Row[]> {
  const which = 'ids' in sel ? 's.job_id = ANY($2::uuid[])' : 's.job_id IN (SELECT id FROM okit.jobs WHERE tenant = $1 AND run_id = $2::uuid)';
  const { rows } = await ledger.pool.query(
    `SELECT ${SNAPSHOT_COLUMNS}, pos FROM (
       SELECT s.*, h.pos FROM okit.first_signal_snapshots s
         JOIN okit.job_history h ON h.job_id = s.job_id AND h.n = s.history_n
        WHERE s.tenant = $1 AND ${which} AND h.pos > $3::int8
        ORDER BY h.pos LIMIT ${STREAM_PAGE_ROWS}) x
     ORDER BY pos`,
    [tenant, 'ids' in sel ? sel.ids : sel.run, String(after)],
  );
  return rows.map((r) => ({ snapshot: toSnapshot(r), pos: BigInt(String(r.pos)) }));
}

/** One job's event: the same body and ETag as its GET (a queued job's live overlay included). */
async function eventData(s: Snapshot, deps: SignalDeps): Promise<string> {
  const { etag, live } = await deps.store.overlay(s);
  return `{"job_id":${JSON.stringify(s.job_id)},"etag":${JSON.stringify(etag)},"signal":${signalBody(s, live)}}`;
}

/** The stream of many jobs; a client that does not accept text/event-stream gets one JSON read instead. */
export async function multiStream(ctx: Ctx, tenant: string, deps: SignalDeps, ledger: Ledger, signal: AbortSignal, principal = `tenant:${tenant}`): Promise<void> {
  const sel = streamSelection(ctx.query);
  // A stream holds a slot (per session or token, and server-wide) until it ends; a one-shot JSON read does not.
  const release = acceptsEventStream(ctx.req.headers.accept) ? deps.streams?.acquire(principal) : undefined;
  try {
    await follow(ctx, tenant, sel, deps, ledger, signal);
  } finally {
    release?.();
  }
}

async function follow(ctx: Ctx, tenant: string, sel: Selection, deps: SignalDeps, ledger: Ledger, signal: AbortSignal): Promise<void> {
  const lastHeader = ctx.req.headers['last-event-id'];
  const resumeFrom = (Array.isArray(lastHeader) ? lastHeader[0] : lastHeader) ?? ctx.query.get('last_event_id');
  let cursor = parseCursor(resumeFrom);
  const resumed = cursor > 0n;
  if ('run' in sel) await ledger.getRun(tenant, sel.run); // RUN_NOT_FOUND for a missing or foreign run
  if (resumed) {
    // A cursor past the tenant's head was never given out (forged, or from another database):
    // without this check it would wait, silently, until the ledger caught up with it.
    const head = await within(ledger.pool.query('SELECT pos FROM okit.ledger_heads WHERE tenant = $1', [tenant]), FIRST_READ_MS);
    if (!head) throw new OkitError('DB_UNAVAILABLE', `the database did not answer within ${FIRST_READ_MS} ms; retry shortly`);
    const at = head.rows[0] ? BigInt(String(head.rows[0].pos)) : 0n;
    if (cursor > at) throw new OkitError('INVALID_INPUT', `Last-Event-ID: ${cursor} is past this tenant's ledger (at ${at}); it is not a cursor of this stream`, { field: 'last_event_id' });
  }

  // Waiters first, then the read: a change committed in between wakes the loop.
  let woken = false;
  let fire: (() => void) | null = null;
  const wake = () => {
    woken = true;
    fire?.();
  };
  const removers = 'ids' in sel ? sel.ids.map((id) => deps.waiters.add(tenant, id, wake)) : [deps.waiters.add(tenant, ANY_JOB, wake)];
  const unwatch = () => {
    for (const r of removers.splice(0)) r();
  };
  let rows: Row[];
  try {
    // Errors here are still plain JSON 4xx/503; a database that does not answer is 503 in bounded time.
    const first = await within(changedSince(ledger, tenant, sel, cursor), FIRST_READ_MS);
    if (!first) throw new OkitError('DB_UNAVAILABLE', `the database did not answer within ${FIRST_READ_MS} ms; retry shortly`);
    rows = first;
  } catch (e) {
    unwatch();
    throw e;
  }
  // Absent or foreign ids, told once per fresh stream (a resumed client already heard).
  const absent: string[] = [];
  if ('ids' in sel && !resumed) {
    const seen = new Set(rows.map((r) => r.snapshot.job_id));
    for (const id of sel.ids) if (!seen.has(id)) absent.push(id);
  }

  const res = ctx.res;
  if (!acceptsEventStream(ctx.req.headers.accept)) {
    unwatch();
    const last = rows.length ? rows[rows.length - 1]!.pos : cursor;
    const signals: string[] = [];
    for (const r of rows) signals.push(await eventData(r.snapshot, deps));
    const text = `{"signals":[${signals.join(',')}],"absent":${JSON.stringify(absent)},"cursor":"${last}","more":${rows.length === STREAM_PAGE_ROWS}}`;
    res.writeHead(200, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': String(Buffer.byteLength(text)), 'Cache-Control': 'no-store' });
    res.end(text);
    return;
  }

  const out = openEventStream(res, deps.sseRetryMs);
  const write = out.write;
  for (const id of absent) write(`event: absent\ndata: {"job_id":${JSON.stringify(id)}}\n\n`);
  deps.waiting.sse++;
  try {
    for (;;) {
      for (const r of rows) {
        write(`id: ${r.pos}\nevent: signal\ndata: ${await eventData(r.snapshot, deps)}\n\n`);
        cursor = r.pos;
      }
      if (signal.aborted || res.destroyed) return;
      // A client that does not read: end rather than buffer without bound; it resumes from its last id.
      if (res.writableLength > MAX_BUFFERED_BYTES) return;
      if (rows.length < STREAM_PAGE_ROWS) {
        const readAt = performance.now();
        // Wait for a wake, the keep-alive, or the bounded re-read (the fallback poll without LISTEN).
        for (;;) {
          if (!woken) {
            const bound = Math.min(Math.max(0, deps.keepAliveMs - (performance.now() - out.lastWrite)), deps.listenerReady() ? 5000 : deps.fallbackPollMs);
            await new Promise<void>((resolve) => {
              const done = () => {
                clearTimeout(timer);
                signal.removeEventListener('abort', done);
                fire = null;
                resolve();
              };
              const timer = setTimeout(done, bound);
              fire = done;
              signal.addEventListener('abort', done, { once: true });
            });
          }
          if (signal.aborted || res.destroyed) return;
          if (performance.now() - out.lastWrite >= deps.keepAliveMs) write(': keepalive\n\n');
          if (woken || performance.now() - readAt >= (deps.listenerReady() ? 5000 : deps.fallbackPollMs)) break;
        }
        const gap = READ_GAP_MS - (performance.now() - readAt);
        if (gap > 0) await new Promise((r) => setTimeout(r, gap));
        if (signal.aborted || res.destroyed) return;
      }
      woken = false;
      try {
        // Bounded, so that keep-alives stay on time while the database is stuck.
        rows = (await within(changedSince(ledger, tenant, sel, cursor), deps.keepAliveMs)) ?? [];
      } catch {
        rows = []; // database away: keep the stream, read again after the next bounded wait
      }
    }
  } finally {
    deps.waiting.sse--;
    unwatch();
    res.end();
  }
}
