/**
 * Time-to-first-signal events: what a surface reports (POST …/telemetry/ttfs) and what the
 * server records of its own part. Pure validation; storage is queue.ts and store.ts.
 */
import { OkitError } from '../errors.js';
import { PHASES, SIGNAL_KINDS, type Phase, type SignalKind } from '../ledger/types.js';
import * as v from '../ledger/validate.js';

export const SURFACES = ['ui', 'cli', 'ci'] as const;
export type Surface = (typeof SURFACES)[number];

/** Events a client may report: a first signal shown, a wait given up on, an error shown instead. */
export const CLIENT_EVENT_TYPES = ['signal.rendered', 'signal.timeout', 'signal.error'] as const;
/** Events only the server writes: its own part of a first signal, from its cache or from Postgres. */
export const SERVER_EVENT_TYPES = ['signal.cache_hit', 'signal.cold_start'] as const;
export type EventType = (typeof CLIENT_EVENT_TYPES)[number] | (typeof SERVER_EVENT_TYPES)[number];

export const SIGNAL_SOURCES = ['snapshot', 'cold_start', 'failure_index'] as const;
export type SignalSource = (typeof SIGNAL_SOURCES)[number];

/** An hour: a longer "time to first signal" is a broken clock, not a measurement. */
export const MAX_TTFS_MS = 3_600_000;
/** Events per POST; a surface batches, it does not stream. */
export const MAX_BATCH_EVENTS = 100;
/** Body limit of the telemetry endpoint (100 events of a few hundred bytes each fit easily). */
export const MAX_TELEMETRY_BODY_BYTES = 64 * 1024;

/** One row of okit.ttfs_events as queued for the batch writer. */
export interface TtfsEvent {
  ts: string;
  tenant: string;
  job_id: string;
  run_id: string | null;
  surface: Surface;
  event_type: EventType;
  ttfs_ms: number;
  server_ms: number | null;
  cache_hit: boolean;
  signal_source: SignalSource | null;
  kind: SignalKind | null;
  phase: Phase | null;
  error_code: string | null;
}

/** A validated client report before the server has checked its job and stamped it. */
export type ClientEvent = Omit<TtfsEvent, 'ts' | 'tenant' | 'run_id'> & { run_id: string | null };

const FIELDS = new Set(['surface', 'event_type', 'ttfs_ms', 'job_id', 'run_id', 'cache_hit', 'signal_source', 'kind', 'phase', 'error_code', 'server_ms']);

function oneOf<T extends string>(x: unknown, field: string, allowed: readonly T[], optional: boolean): T | null {
  if ((x === undefined || x === null) && optional) return null;
  if (typeof x !== 'string' || !(allowed as readonly string[]).includes(x))
    throw new OkitError('INVALID_INPUT', `${field}: must be one of ${allowed.join(', ')}`, { field });
  return x as T;
}

function millis(x: unknown, field: string, optional: boolean): number | null {
  if ((x === undefined || x === null) && optional) return null;
  if (typeof x !== 'number' || !Number.isFinite(x) || x < 0 || x > MAX_TTFS_MS)
    throw new OkitError('INVALID_INPUT', `${field}: must be a number of milliseconds from 0 to ${MAX_TTFS_MS}`, { field });
  return Math.round(x * 1000) / 1000; // the column keeps microseconds
}

export function isSurface(x: unknown): x is Surface {
  return typeof x === 'string' && (SURFACES as readonly string[]).includes(x);
}

/** Validates one reported event; `at` names it in errors (`events[3].ttfs_ms`). */
export function clientEvent(raw: unknown, at: string): ClientEvent {
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) throw new OkitError('INVALID_INPUT', `${at}: must be an object`, { field: at });
  const e = raw as Record<string, unknown>;
  for (const k of Object.keys(e)) if (!FIELDS.has(k)) throw new OkitError('INVALID_INPUT', `${at}.${k}: unknown field`, { field: `${at}.${k}` });
  const f = (name: string) => `${at}.${name}`;
  const eventType = oneOf(e.event_type, f('event_type'), CLIENT_EVENT_TYPES, false)!;
  if (e.cache_hit !== undefined && typeof e.cache_hit !== 'boolean') throw new OkitError('INVALID_INPUT', `${f('cache_hit')}: must be a boolean`, { field: f('cache_hit') });
  let errorCode: string | null = null;
  if (e.error_code !== undefined && e.error_code !== null) {
    try {
      errorCode = v.errorCode(e.error_code);
    } catch {
      throw new OkitError('INVALID_INPUT', `${f('error_code')}: must match ^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$`, { field: f('error_code') });
    }
  }
  if (eventType === 'signal.error' && !errorCode) throw new OkitError('INVALID_INPUT', `${f('error_code')}: is required for signal.error`, { field: f('error_code') });
  return {
    surface: oneOf(e.surface, f('surface'), SURFACES, false)!,
    event_type: eventType,
    ttfs_ms: millis(e.ttfs_ms, f('ttfs_ms'), false)!,
    server_ms: millis(e.server_ms, f('server_ms'), true),
    job_id: v.uuid(e.job_id, f('job_id')),
    run_id: e.run_id === undefined || e.run_id === null ? null : v.uuid(e.run_id, f('run_id')),
    cache_hit: e.cache_hit === true,
    signal_source: oneOf(e.signal_source, f('signal_source'), SIGNAL_SOURCES, true),
    kind: oneOf(e.kind, f('kind'), SIGNAL_KINDS, true),
    phase: oneOf(e.phase, f('phase'), PHASES, true),
    error_code: errorCode,
  };
}

/** Validates a POST body `{"events": [...]}`: 1 to MAX_BATCH_EVENTS events, all valid, or nothing. */
export function clientBatch(body: Record<string, unknown>): ClientEvent[] {
  for (const k of Object.keys(body)) if (k !== 'events') throw new OkitError('INVALID_INPUT', `${k}: unknown field (the body is {"events": [...]})`, { field: k });
  const events = body.events;
  if (!Array.isArray(events) || events.length === 0) throw new OkitError('INVALID_INPUT', 'events: must be a non-empty array', { field: 'events' });
  if (events.length > MAX_BATCH_EVENTS)
    throw new OkitError('INVALID_INPUT', `events: at most ${MAX_BATCH_EVENTS} per request (got ${events.length})`, { field: 'events', max: MAX_BATCH_EVENTS });
  return events.map((e, i) => clientEvent(e, `events[${i}]`));
}
