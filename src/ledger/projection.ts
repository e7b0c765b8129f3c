/**
 * History → first signal. A pure fold: it reads neither the clock nor the database, so the
 * live ledger (writing snapshots), the bundle importer and the offline replay tool (checking
 * them) agree exactly. Everything it needs is in the history rows' data. It lives beside the
 * ledger, below everything that uses it; how a snapshot is shown is src/signals/signal.ts.
 */
import type { Json } from '../util/canonical.js';
import { formatMicros as formatMicrosIso, parseMicros } from '../util/time.js';
import type { HistoryRow, NextAction, Phase, Signal, SignalKind, Snapshot } from './types.js';
import { PHASES } from './types.js';

type Obj = { [k: string]: Json };

interface Sample {
  at: bigint;
  done: number;
}

interface Fold {
  kind: SignalKind;
  phase: Phase;
  summary: string;
  runId: string | null;
  type: string;
  attempt: number;
  maxAttempts: number;
  queuePosition: number | null;
  worker: string | null;
  itemsTotal: number | null;
  itemsDone: number | null;
  samples: Sample[];
  firstClaimAt: bigint | null;
  /** This attempt's claim: what "elapsed" counts from for the p50 ETA. */
  claimAt: bigint | null;
  /** The newest `data.eta` seen (docs/eta.md); null on histories written before it: legacy ETA rules. */
  etaIn: EtaInputs | null;
  /** The last row carried its own ETA inputs: only then may the summary say "no history" (older inputs may be stale). */
  etaFresh: boolean;
  /** The ETA a queued/blocked row set, as of that row's `at` (it counts down to the snapshot's `updated_at`). */
  waitEta: { from: bigint; mode: 'queue' | 'retry' | 'throttle'; seconds: number | null } | null;
  lastKnownOutcome: Obj | null;
  nextActions: NextAction[] | null;
  extra: Obj;
  source: 'snapshot' | 'failure_index';
  /** Issue 14 enrichments (stalled, learned signatures, links): see enrich() below. */
  en: Enrichment;
  /** While the job's type is paused: the signal it had before, which `resumed` restores. */
  beforePause: { kind: SignalKind; summary: string; extra: Obj; nextActions: NextAction[] | null } | null;
}

/** A row's ETA inputs, written by the ledger at transition time (docs/eta.md). */
interface EtaInputs {
  /** p50 duration of the type's last N successes; null: the type has none yet. */
  p50: number | null;
  samples: number;
  /** Workers recently active on the type (queued rows only). */
  workers: number | null;
}

function etaInputs(v: Json | undefined): EtaInputs | null {
  const o = obj(v);
  if (!o) return null;
  const p50 = num(o.p50_seconds);
  const workers = num(o.workers);
  return {
    p50: p50 !== null && p50 >= 0 ? p50 : null,
    samples: Math.max(0, Math.floor(num(o.samples) ?? 0)),
    workers: workers !== null && workers >= 0 ? Math.floor(workers) : null,
  };
}

/**
 * A queued job's ETA as of its row (`enqueued`, and the requeues `retried`, `lease_expired`):
 * the jobs ahead shared among the workers on the type, then this job's own run, after any
 * not-before wait. Null without a p50 or when the position was capped.
 */
function queueWaitEta(f: Fold, d: Obj, at: bigint): Fold['waitEta'] {
  const p50 = f.etaIn?.p50 ?? null;
  const ahead = f.queuePosition === null ? null : Math.max(0, f.queuePosition - 1);
  const workers = Math.max(1, f.etaIn?.workers ?? 1);
  const wait = Math.max(0, num(d.wait_seconds) ?? 0);
  return { from: at, mode: 'queue', seconds: p50 === null || ahead === null ? null : wait + (ahead / workers) * p50 + p50 };
}

/** How many recent progress samples the rate (and so the ETA) is computed over. */
export const ETA_WINDOW = 5;
/**
 * ETAs beyond this (365 days) are not estimates anyone can act on, and unbounded they would
 * overflow storage and JSON's exact integers (1e10 items at 1 item per 5 s): they are null,
 * "unknown", like an ETA without a rate.
 */
export const MAX_ETA_SECONDS = 365 * 86400;

const str = (v: Json | undefined): string | null => (typeof v === 'string' ? v : null);
const num = (v: Json | undefined): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);
const obj = (v: Json | undefined): Obj | null => (v && typeof v === 'object' && !Array.isArray(v) ? (v as Obj) : null);

export function formatDuration(us: bigint): string {
  let s = Number(us / 1000000n);
  if (s < 60) return `${s}s`;
  const h = Math.floor(s / 3600);
  s -= h * 3600;
  const m = Math.floor(s / 60);
  s -= m * 60;
  return h > 0 ? `${h}h ${m}m ${s}s` : `${m}m ${s}s`;
}

function asPhase(v: Json | undefined): Phase {
  return typeof v === 'string' && (PHASES as readonly string[]).includes(v) ? (v as Phase) : 'unknown';
}

/** Seconds → an ETA: rounded up, never negative, null when not finite or beyond MAX_ETA_SECONDS. */
function etaOf(s: number | null): number | null {
  if (s === null || !Number.isFinite(s)) return null;
  const c = Math.ceil(Math.max(0, s) - 1e-9);
  return c <= MAX_ETA_SECONDS ? Math.max(0, c) : null;
}

const secondsBetween = (from: bigint, to: bigint): number => (to > from ? Number(to - from) / 1e6 : 0);

function rateEta(f: Fold): number | null {
  if (f.itemsTotal === null || f.itemsDone === null) return null;
  if (f.itemsDone >= f.itemsTotal) return 0;
  const w = f.samples;
  if (w.length < 2) return null;
  const first = w[0]!;
  const last = w[w.length - 1]!;
  const dt = Number(last.at - first.at) / 1e6;
  const dDone = last.done - first.done;
  if (dt <= 0 || dDone <= 0) return null;
  const s = Math.ceil((f.itemsTotal - f.itemsDone) / (dDone / dt));
  return s <= MAX_ETA_SECONDS ? s : null;
}

function errorOf(d: Obj): { code: string; message: string } {
  const e = obj(d.error) ?? {};
  return { code: str(e.code) ?? 'UNKNOWN', message: str(e.message) ?? 'no message' };
}

function historyAction(jobId: string): NextAction {
  return { label: 'Inspect the job history', command: `okit job history ${jobId}` };
}

/** "token:ab12…" or "token:ab12…: reason". */
function byWhom(d: Obj): string {
  const reason = str(d.reason);
  return `${str(d.actor) ?? 'an operator'}${reason ? `: ${reason}` : ''}`;
}

function step(f: Fold, r: HistoryRow): void {
  const d = r.data;
  const at = parseMicros(r.at);
  const own = etaInputs(d.eta);
  // A pause and its resume restore the signal as it was, its note included.
  if (r.event !== 'paused' && r.event !== 'resumed') f.etaFresh = own !== null;
  f.etaIn = own ?? f.etaIn;
  const p50 = f.etaIn?.p50 ?? null;
  // A pause lasts through a new priority; any other row ends it (a pause of a requeued job is a new row).
  if (r.event !== 'paused' && r.event !== 'resumed' && r.event !== 'prioritized') f.beforePause = null;
  switch (r.event) {
    case 'enqueued': {
      f.type = str(d.type) ?? 'unknown';
      f.runId = str(d.run_id);
      f.maxAttempts = num(d.max_attempts) ?? 1;
      f.queuePosition = num(d.queue_position);
      f.lastKnownOutcome = obj(d.last_known_outcome);
      f.kind = 'queued';
      f.phase = 'unknown';
      const atLeast = num(d.queue_ahead_at_least);
      if (f.etaIn) f.waitEta = queueWaitEta(f, d, at);
      f.summary =
        f.queuePosition === null && atLeast !== null
          ? `Waiting in queue (more than ${atLeast} ahead)`
          : `Waiting in queue (position: ${f.queuePosition ?? '?'})`;
      f.extra = {};
      break;
    }
    case 'throttled': {
      const host = str(d.host) ?? 'source';
      const wait = num(d.wait_seconds);
      f.kind = 'blocked';
      f.summary = `Throttled by ${host}: next slot in ${wait === null ? '?' : Math.ceil(wait)}s`;
      f.extra = { throttled_host: host, throttled_until: str(d.throttled_until) };
      if (f.etaIn) f.waitEta = { from: at, mode: 'throttle', seconds: p50 === null || wait === null ? null : Math.max(0, wait) + p50 };
      f.nextActions = [{ label: `Wait for ${host}'s rate limit; the job resumes by itself` }];
      break;
    }
    case 'claimed': {
      f.attempt = num(d.attempt) ?? f.attempt + 1;
      f.worker = str(d.worker_id);
      f.firstClaimAt ??= at;
      f.claimAt = at;
      f.waitEta = null;
      f.kind = 'started';
      f.phase = 'unknown';
      f.itemsDone = null;
      f.itemsTotal = null;
      f.samples = [];
      f.queuePosition = null;
      f.nextActions = null;
      f.extra = { lease_expires_at: str(d.lease_expires_at) };
      f.summary = `Job started on ${f.worker ?? 'a worker'}` + (f.attempt > 1 ? ` (attempt ${f.attempt} of ${f.maxAttempts})` : '');
      break;
    }
    case 'progress': {
      const phase = asPhase(d.phase);
      if (phase !== f.phase) {
        // Item counts and their rate belong to a phase: a new phase starts from nothing.
        f.samples = [];
        f.itemsDone = null;
        f.itemsTotal = null;
      }
      f.phase = phase;
      f.kind = 'phase';
      const total = num(d.items_total);
      const done = num(d.items_done);
      if (total !== null) f.itemsTotal = total;
      if (done !== null) {
        // A clock that went backwards (or two samples in one microsecond): the old rate means nothing.
        const prev = f.samples.at(-1);
        if (prev && at <= prev.at) f.samples = [];
        f.itemsDone = done;
        f.samples.push({ at, done });
        if (f.samples.length > ETA_WINDOW) f.samples.shift();
      }
      const text = str(d.summary) ?? `Working on ${phase}`;
      const pct =
        f.itemsTotal !== null && f.itemsDone !== null && f.itemsTotal > 0
          ? ` (${Math.min(100, Math.floor((f.itemsDone / f.itemsTotal) * 100))}%)`
          : '';
      f.summary = text + pct;
      break;
    }
    case 'succeeded': {
      f.kind = 'succeeded';
      f.itemsDone = f.itemsTotal;
      f.summary = `Completed in ${formatDuration(at - (f.firstClaimAt ?? at))}`;
      f.lastKnownOutcome = { status: 'succeeded', finished_at: r.at, ...(obj(d.result) ? { result: d.result! } : {}) };
      f.nextActions = null;
      f.extra = {};
      break;
    }
    case 'retry_scheduled': {
      const e = errorOf(d);
      f.kind = 'queued';
      f.summary = `Retry ${f.attempt + 1} of ${f.maxAttempts} at ${str(d.retry_at) ?? '?'} after ${e.code}: ${e.message}`;
      f.extra = { retry_at: str(d.retry_at), last_error_code: e.code };
      if (f.etaIn) {
        // A known failure's MTTR (failure → next success) already spans the backoff and the rerun.
        const mttr = shownSignature(d)?.mttr ?? null;
        const backoff = num(d.backoff_seconds);
        const seconds = mttr !== null && mttr >= 0 ? mttr : p50 === null || backoff === null ? null : Math.max(0, backoff) + p50;
        f.waitEta = { from: at, mode: 'retry', seconds };
      }
      f.worker = null;
      f.nextActions = null;
      break;
    }
    case 'lease_expired': {
      const who = str(d.worker_id) ?? 'its worker';
      if (r.to_state === 'dead_letter') {
        f.kind = 'failed';
        f.summary = `Dead-lettered: lease on ${who} expired on the last of ${f.maxAttempts} attempts`;
        f.lastKnownOutcome = { status: 'dead_letter', finished_at: r.at, error_code: 'LEASE_EXPIRED' };
        f.nextActions = [historyAction(r.job_id), { label: `Check worker ${who}: it stopped heartbeating` }];
      } else {
        f.kind = 'queued';
        f.summary = `Lease on ${who} expired; requeued (attempt ${f.attempt} of ${f.maxAttempts} used)`;
        // Rows since issue 14 carry its new place in the queue; older ones: a p50-only estimate.
        if (own && 'queue_position' in d) {
          f.queuePosition = num(d.queue_position);
          f.waitEta = queueWaitEta(f, d, at);
        } else if (f.etaIn) f.waitEta = { from: at, mode: 'queue', seconds: p50 };
        f.nextActions = null;
      }
      f.extra = { last_error_code: 'LEASE_EXPIRED' };
      f.worker = null;
      break;
    }
    case 'failed':
    case 'dead_lettered': {
      const e = errorOf(d);
      const sig = obj(d.signature);
      f.kind = 'failed';
      f.summary =
        r.event === 'failed'
          ? `Failed: ${e.message} (${e.code})`
          : `Dead-lettered after ${f.attempt} of ${f.maxAttempts} attempts: ${e.message} (${e.code})`;
      f.lastKnownOutcome = { status: r.to_state, finished_at: r.at, error_code: e.code };
      f.nextActions = [historyAction(r.job_id)];
      f.extra = { last_error_code: e.code };
      if (sig && shownSignature(d)) {
        f.source = 'failure_index';
        const cause = str(sig.likely_cause);
        const action = str(sig.suggested_action);
        f.lastKnownOutcome = {
          ...f.lastKnownOutcome,
          ...(cause ? { likely_cause: cause } : {}),
          ...(num(sig.mttr_p50_seconds) !== null ? { mttr_p50_seconds: sig.mttr_p50_seconds! } : {}),
          signature_id: str(sig.id),
        };
        if (action) f.nextActions.unshift({ label: action });
      }
      break;
    }
    case 'retried': {
      const given = num(d.attempts_given_back);
      f.kind = 'queued';
      f.phase = 'unknown';
      f.attempt = 0;
      f.worker = null;
      f.queuePosition = num(d.queue_position);
      f.itemsDone = null;
      f.itemsTotal = null;
      f.samples = [];
      f.claimAt = null;
      f.waitEta = own && 'queue_position' in d ? queueWaitEta(f, d, at) : f.etaIn ? { from: at, mode: 'queue', seconds: p50 } : null;
      f.summary = `Retried by ${byWhom(d)}; waiting in queue` + (given ? ` (${given} attempt${given === 1 ? '' : 's'} given back)` : '');
      f.nextActions = null;
      f.source = 'snapshot';
      f.extra = { retried_by: str(d.actor) };
      break;
    }
    case 'prioritized': {
      const p = num(d.priority);
      if (f.beforePause) {
        f.extra = { ...f.extra, priority: p };
        f.beforePause.extra = { ...f.beforePause.extra, priority: p };
      } else if (r.to_state === 'throttled') f.extra = { ...f.extra, priority: p };
      else {
        f.kind = 'queued';
        f.summary = `Waiting in queue (priority ${p ?? '?'}, set by ${str(d.actor) ?? 'an operator'})`;
        f.extra = { ...f.extra, priority: p };
      }
      break;
    }
    case 'paused': {
      f.beforePause ??= { kind: f.kind, summary: f.summary, extra: f.extra, nextActions: f.nextActions };
      f.kind = 'blocked';
      f.summary = `Paused by ${byWhom(d)}`;
      f.extra = { ...f.beforePause.extra, paused_by: str(d.actor) };
      f.nextActions = [{ label: `Resume the ${f.type} queue`, command: `okit queue resume ${f.type}` }];
      break;
    }
    case 'resumed': {
      const b = f.beforePause;
      if (b) {
        f.kind = b.kind;
        f.summary = b.summary;
        f.extra = b.extra;
        f.nextActions = b.nextActions;
      }
      f.beforePause = null;
      break;
    }
    case 'canceled': {
      f.kind = 'canceled';
      const reason = str(d.reason);
      f.summary = `Canceled by ${str(d.actor) ?? 'an operator'}` + (reason ? `: ${reason}` : '');
      f.lastKnownOutcome = { status: 'canceled', finished_at: r.at };
      f.nextActions = null;
      f.extra = {};
      break;
    }
  }
}

/**
 * The ETA as of `now` (the last row's `at`), and a note for the summary. Histories without ETA
 * inputs (written before docs/eta.md) keep the old rule: a rate from item counts, or null.
 */
function etaAt(f: Fold, now: bigint): { eta: number | null; note: string | null } {
  if (f.kind === 'succeeded') return { eta: 0, note: null };
  if (f.kind !== 'queued' && f.kind !== 'started' && f.kind !== 'phase' && f.kind !== 'blocked') return { eta: null, note: null };
  if (!f.etaIn) return { eta: f.kind === 'phase' || f.kind === 'started' ? rateEta(f) : null, note: null };
  const p50 = f.etaIn.p50;
  const noHistory = { eta: null, note: f.etaFresh ? `no ETA yet: no ${f.type} job has succeeded` : null };
  if (f.kind === 'started' || f.kind === 'phase') {
    const rate = rateEta(f);
    if (rate !== null) return { eta: rate, note: null };
    // With item counts the rate is a sample away: no need to say there is no history.
    if (p50 === null) return f.itemsDone !== null && f.itemsTotal !== null ? { eta: null, note: null } : noHistory;
    const elapsed = secondsBetween(f.claimAt ?? now, now);
    if (elapsed > p50) return { eta: 0, note: `taking longer than usual (p50 ${formatDuration(BigInt(Math.round(p50 * 1e6)))})` };
    return { eta: etaOf(p50 - elapsed), note: null };
  }
  // Paused: it waits for an operator, not for the clock.
  if (f.beforePause) return { eta: null, note: null };
  const w = f.waitEta;
  if (!w) return { eta: null, note: null };
  if (w.seconds === null) return p50 === null ? noHistory : { eta: null, note: null };
  return { eta: etaOf(w.seconds - secondsBetween(w.from, now)), note: null };
}

/** A job's projection in progress: fold the rows one at a time (sorted by n), then finish. */
export interface Projection {
  fold: Fold;
  first: HistoryRow | null;
  last: HistoryRow | null;
}

export function startProjection(): Projection {
  return {
    fold: {
      kind: 'unavailable',
      phase: 'unknown',
      summary: 'No signal yet',
      runId: null,
      type: 'unknown',
      attempt: 0,
      maxAttempts: 1,
      queuePosition: null,
      worker: null,
      itemsTotal: null,
      itemsDone: null,
      samples: [],
      firstClaimAt: null,
      claimAt: null,
      etaIn: null,
      etaFresh: false,
      waitEta: null,
      lastKnownOutcome: null,
      nextActions: null,
      extra: {},
      source: 'snapshot',
      en: { stall: null, lastProgressAt: null, previousJobId: null, signature: null, linked: false },
      beforePause: null,
    },
    first: null,
    last: null,
  };
}

export function projectStep(p: Projection, r: HistoryRow): void {
  step(p.fold, r);
  enrich(p.fold, r);
  // Only what finishProjection reads is kept of the first and last rows, not their data.
  const keep = { tenant: r.tenant, job_id: r.job_id, n: r.n, at: r.at, to_state: r.to_state, hash: r.hash } as HistoryRow;
  if (!p.first) p.first = keep;
  p.last = keep;
}

export function finishProjection(p: Projection): Snapshot {
  const f = p.fold;
  const first = p.first;
  const last = p.last;
  if (!first || !last) throw new RangeError('cannot project an empty history');
  const diagnostics: Obj = {
    job_type: f.type,
    state: last.to_state,
    attempt: f.attempt,
    max_attempts: f.maxAttempts,
    queue_position: f.queuePosition,
    worker_id: f.worker,
    items_done: f.itemsDone,
    items_total: f.itemsTotal,
    history_n: last.n,
  };
  for (const [k, v] of Object.entries(f.extra)) if (v !== null) diagnostics[k] = v;
  enrichDiagnostics(f, diagnostics);
  const e = etaAt(f, parseMicros(last.at));
  const signal: Signal = {
    kind: f.kind,
    phase: f.phase,
    summary: e.note ? `${f.summary}; ${e.note}` : f.summary,
    eta_seconds: e.eta,
    last_known_outcome: f.lastKnownOutcome,
    next_actions: withLinks(f, f.nextActions),
    diagnostics,
  };
  return {
    ...signal,
    job_id: first.job_id,
    tenant: first.tenant,
    run_id: f.runId,
    source: f.source,
    history_n: last.n,
    history_hash: last.hash,
    created_at: first.at,
    updated_at: last.at,
  };
}

/** Folds a job's whole history (sorted by n) into its snapshot. */
export function project(rows: readonly HistoryRow[]): Snapshot {
  if (rows.length === 0) throw new RangeError('cannot project an empty history');
  const p = startProjection();
  for (const r of rows) projectStep(p, r);
  return finishProjection(p);
}

// ---------------------------------------------------------------- issue 14: stalled, signatures, links
// Kept apart from the ETA rules above (docs/eta.md, "Stalled detection", "Signatures that learn", "Links").

/** A learned signature below this confidence is not shown: no cause, no MTTR in the ETA (docs/eta.md). */
export const SIGNATURE_CONFIDENCE_FLOOR = 0.5;

interface Enrichment {
  /** Set by a `stalled` row, cleared by any other row: how long without progress, as of the mark. */
  stall: { seconds: number; lastProgressAt: string | null } | null;
  /** This attempt's last progress (or its claim): what a stall counts from. */
  lastProgressAt: bigint | null;
  /** The last finished job of the type when this one was enqueued (its enqueued row's last_known_outcome). */
  previousJobId: string | null;
  /** The failure signature the current signal shows (retry_scheduled, failed, dead_lettered). */
  signature: Obj | null;
  /**
   * The job's enqueued row was written since issue 14 (it carries `eta`): only then are links
   * added, so bundles written before replay to the snapshots they hold.
   */
  linked: boolean;
}

/** The signature a failure row recorded, if it is shown: operator-defined ones always, learned ones from the floor up. */
function shownSignature(d: Obj): { sig: Obj; mttr: number | null } | null {
  const sig = obj(d.signature);
  if (!sig) return null;
  const confidence = num(sig.confidence);
  if (obj(sig.learned) && (confidence === null || confidence < SIGNATURE_CONFIDENCE_FLOOR)) return null;
  const mttr = num(sig.mttr_p50_seconds);
  return { sig, mttr: mttr !== null && mttr >= 0 ? mttr : null };
}

function percentOf(f: Fold): string {
  return f.itemsTotal !== null && f.itemsDone !== null && f.itemsTotal > 0 ? ` ${Math.min(100, Math.floor((f.itemsDone / f.itemsTotal) * 100))}%` : '';
}

function mttrText(s: number | null): string {
  return s === null ? '' : `, MTTR ${formatDuration(BigInt(Math.round(s * 1e6)))}`;
}

function enrich(f: Fold, r: HistoryRow): void {
  const d = r.data;
  const at = parseMicros(r.at);
  if (r.event !== 'stalled') f.en.stall = null;
  switch (r.event) {
    case 'enqueued':
      f.en.previousJobId = str(obj(d.last_known_outcome)?.job_id);
      f.en.linked = obj(d.eta) !== null;
      f.en.signature = null;
      break;
    case 'claimed':
    case 'progress':
      f.en.lastProgressAt = at;
      f.en.signature = null;
      break;
    case 'stalled': {
      const since = f.en.lastProgressAt ?? at;
      f.en.stall = { seconds: secondsBetween(since, at), lastProgressAt: f.en.lastProgressAt === null ? null : formatMicrosIso(since) };
      const last = f.phase !== 'unknown' || f.kind === 'phase' ? `${f.phase}${percentOf(f)}` : `started on ${f.worker ?? 'a worker'}`;
      f.summary = `No progress for ${formatDuration(at > since ? at - since : 0n)} (last: ${last})`;
      break;
    }
    case 'retry_scheduled':
    case 'failed':
    case 'dead_lettered': {
      const shown = shownSignature(d);
      f.en.signature = null;
      if (!shown || num(shown.sig.sample_count) === null) break;
      // Rows written since issue 14 carry what was learned; older rows show as before.
      const s = shown.sig;
      const n = num(s.sample_count)!;
      const cause = str(s.likely_cause);
      f.en.signature = {
        id: str(s.id),
        likely_cause: cause,
        mttr_p50_seconds: shown.mttr,
        confidence: num(s.confidence),
        sample_count: n,
        learned: obj(s.learned) !== null,
      };
      if (r.event !== 'retry_scheduled') {
        f.lastKnownOutcome = { ...(f.lastKnownOutcome ?? {}), confidence: num(s.confidence), sample_count: n, ...(shown.mttr !== null ? { mttr_p50_seconds: shown.mttr } : {}) };
      }
      // A retry says what it is waiting on; a final failure carries it in last_known_outcome (its summary stays the error).
      const seen = `seen ${n} time${n === 1 ? '' : 's'}${mttrText(shown.mttr)}`;
      if (r.event === 'retry_scheduled') f.summary += cause ? `; likely cause: ${cause} (${seen})` : `; ${seen}`;
      break;
    }
    case 'retried':
      f.en.signature = null;
      break;
  }
}

function enrichDiagnostics(f: Fold, diagnostics: Obj): void {
  if (f.en.stall) {
    diagnostics.is_stalled = true;
    diagnostics.stalled_for_seconds = Math.floor(f.en.stall.seconds);
    if (f.en.stall.lastProgressAt) diagnostics.last_progress_at = f.en.stall.lastProgressAt;
  }
  if (f.en.signature) diagnostics.failure_signature = f.en.signature;
}

/** The kind's own actions, then links: the job's run (/runs/{id}) and the previous run of its type (/jobs/{id}). */
function withLinks(f: Fold, actions: NextAction[] | null): NextAction[] | null {
  if (!f.en.linked) return actions;
  const own = actions?.map((a) => (a.command?.startsWith('okit job history ') && !a.href ? { ...a, href: `/jobs/${a.command.slice('okit job history '.length)}` } : a)) ?? null;
  const links: NextAction[] = [];
  if (f.runId) links.push({ label: 'View the run', href: `/runs/${f.runId}` });
  if (f.en.previousJobId) links.push({ label: 'View previous run', command: `okit job get ${f.en.previousJobId}`, href: `/jobs/${f.en.previousJobId}` });
  if (links.length === 0) return own;
  return [...(own ?? []), ...links];
}
