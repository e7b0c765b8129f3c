import { OkitError } from '../errors.js';
import { canonicalize, type Json } from '../util/canonical.js';
import { isTimestamp, parseMicros } from '../util/time.js';
import { PHASES, type Phase } from './types.js';

const TENANT_RE = /^[a-z0-9][a-z0-9._-]{0,63}$/;
const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const TYPE_RE = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,99}$/;
const WORKER_RE = /^[A-Za-z0-9][A-Za-z0-9._:@-]{0,99}$/;
const CODE_RE = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$/;
const HOST_RE = /^[A-Za-z0-9.-]{1,253}(:[0-9]{1,5})?$/;

export const MAX_PAYLOAD_BYTES = 64 * 1024;

// Postgres text and jsonb cannot hold NUL, and jsonb refuses unpaired UTF-16 surrogates
// (text would silently turn them into U+FFFD, breaking the hash of what was written).
const UNSTORABLE_RE = /\u0000|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

export function isStorable(s: string): boolean {
  return !UNSTORABLE_RE.test(s);
}

/** The first string (value or key) in a JSON value that Postgres cannot store, if any. */
function unstorableIn(v: unknown): string | null {
  if (typeof v === 'string') return isStorable(v) ? null : v;
  if (Array.isArray(v)) {
    for (const x of v) {
      const u = unstorableIn(x);
      if (u !== null) return u;
    }
    return null;
  }
  if (v && typeof v === 'object') {
    for (const [k, x] of Object.entries(v)) {
      const u = isStorable(k) ? unstorableIn(x) : k;
      if (u !== null) return u;
    }
  }
  return null;
}

function bad(field: string, why: string): never {
  throw new OkitError('INVALID_INPUT', `${field}: ${why}`, { field });
}

export function tenant(v: unknown): string {
  if (typeof v !== 'string' || !TENANT_RE.test(v)) bad('tenant', 'must match ^[a-z0-9][a-z0-9._-]{0,63}$');
  return v;
}
export function uuid(v: unknown, field = 'id'): string {
  if (typeof v !== 'string' || !UUID_RE.test(v)) bad(field, 'must be a lowercase UUID');
  return v;
}
export function isUuid(v: unknown): v is string {
  return typeof v === 'string' && UUID_RE.test(v);
}
export function jobType(v: unknown, field = 'type'): string {
  if (typeof v !== 'string' || !TYPE_RE.test(v)) bad(field, 'must match ^[A-Za-z0-9][A-Za-z0-9._:-]{0,99}$');
  return v;
}
export function workerId(v: unknown): string {
  if (typeof v !== 'string' || !WORKER_RE.test(v)) bad('worker_id', 'must match ^[A-Za-z0-9][A-Za-z0-9._:@-]{0,99}$');
  return v;
}
export function host(v: unknown): string {
  if (typeof v !== 'string' || !HOST_RE.test(v)) bad('host', 'must be a host name, optionally with :port');
  return v.toLowerCase();
}
export function errorCode(v: unknown): string {
  if (typeof v !== 'string' || !CODE_RE.test(v)) bad('error.code', 'must match ^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$');
  return v;
}
export function text(v: unknown, field: string, max: number, optional = false): string | null {
  if (v === undefined || v === null) {
    if (optional) return null;
    bad(field, 'is required');
  }
  if (typeof v !== 'string' || v.length === 0 || v.length > max) bad(field, `must be a string of 1 to ${max} characters`);
  if (!isStorable(v)) bad(field, 'must not contain NUL or unpaired surrogates');
  return v;
}
export function int(v: unknown, field: string, min: number, max: number, dflt?: number): number {
  if (v === undefined || v === null) {
    if (dflt !== undefined) return dflt;
    bad(field, 'is required');
  }
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) bad(field, `must be an integer from ${min} to ${max}`);
  return v;
}
export function num(v: unknown, field: string, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < min || v > max) bad(field, `must be a number from ${min} to ${max}`);
  return v;
}
export function phase(v: unknown): Phase {
  if (typeof v !== 'string' || !(PHASES as readonly string[]).includes(v)) bad('phase', `must be one of ${PHASES.join(', ')}`);
  return v as Phase;
}
// The range formatMicros renders as RFC 3339 (four-digit years) and Postgres stores.
const MIN_TS = parseMicros('0001-01-01T00:00:00Z');
const MAX_TS = parseMicros('9999-12-31T23:59:59.999999Z');

export function timestamp(v: unknown, field: string): string {
  if (!isTimestamp(v)) bad(field, 'must be an RFC 3339 timestamp');
  const us = parseMicros(v);
  if (us < MIN_TS || us > MAX_TS) bad(field, 'must be between years 0001 and 9999 (UTC)');
  return v;
}
/** Canonical JSON text of a payload, refusing what JSON cannot carry exactly and oversized values. */
export function payload(v: unknown, field = 'payload'): { value: Json; canonical: string } {
  let canonical: string;
  try {
    canonical = canonicalize(v === undefined ? {} : v);
  } catch (e) {
    bad(field, (e as Error).message);
  }
  if (Buffer.byteLength(canonical) > MAX_PAYLOAD_BYTES) bad(field, `must be at most ${MAX_PAYLOAD_BYTES} bytes of canonical JSON`);
  const value = JSON.parse(canonical) as Json;
  if (unstorableIn(value) !== null) bad(field, 'strings must not contain NUL or unpaired surrogates');
  return { value, canonical };
}
