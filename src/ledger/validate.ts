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
const LEASE_TOKEN_RE = /^[A-Za-z0-9_-]{22}$/;

// Input limits (README "Input limits"; the HTTP door enforces the same before these run).
/** Most nested arrays/objects in a JSON value (payload, result, ...): `[[1]]` is 2. */
export const MAX_JSON_DEPTH = 64;
/** Bytes of canonical JSON (UTF-8). */
export const MAX_PAYLOAD_BYTES = 64 * 1024;
export const MAX_RESULT_BYTES = 4096;
/** Characters (Unicode code points) of text fields. */
export const MAX_SUMMARY_CHARS = 500;
export const MAX_ERROR_MESSAGE_CHARS = 2000;
export const MAX_REASON_CHARS = 500;
export const MAX_IDEMPOTENCY_KEY_CHARS = 200;
/** items_done / items_total. */
export const MAX_ITEMS = 1e12;

// Postgres text and jsonb cannot hold NUL, and jsonb refuses unpaired UTF-16 surrogates
// (text would silently turn them into U+FFFD, breaking the hash of what was written).
const UNSTORABLE_RE = /\u0000|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;
// I-JSON (RFC 7493) refuses Unicode noncharacters: U+FDD0..U+FDEF and U+xFFFE/U+xFFFF of every plane.
const NONCHAR_RE = new RegExp(
  `[\\u{FDD0}-\\u{FDEF}${Array.from({ length: 17 }, (_, p) => `\\u{${(p * 0x10000 + 0xfffe).toString(16)}}\\u{${(p * 0x10000 + 0xffff).toString(16)}}`).join('')}]`,
  'u',
);
// In text fields: C0 controls, DEL, C1 controls and the Unicode line/paragraph separators
// (they could retitle a terminal, clear it or forge a line of `okit job status`).
const CONTROL_RE = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/;


const cpName = (s: string) => 'U+' + s.codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0');

/** Why a string cannot be taken as JSON text at input, or null. */
function stringProblem(s: string): string | null {
  const u = UNSTORABLE_RE.exec(s);
  if (u) return u[0] === '\u0000' ? 'contains NUL' : `contains a lone surrogate (${cpName(u[0])}) at index ${u.index}`;
  const n = NONCHAR_RE.exec(s);
  if (n) return `contains the noncharacter ${cpName(n[0])} at index ${n.index}`;
  return null;
}

/**
 * The first reason a JSON value cannot be taken (too deep, a string or key that is not
 * storable I-JSON), or null. Iterative: a value of any depth cannot overflow the stack here,
 * and canonicalize() (recursive) only ever sees values at most MAX_JSON_DEPTH deep.
 */
function jsonProblem(root: unknown, maxDepth: number): string | null {
  const stack: Array<[unknown, number]> = [[root, 0]];
  while (stack.length) {
    const [v, depth] = stack.pop()!;
    if (typeof v === 'string') {
      const p = stringProblem(v);
      if (p) return `a string ${p}`;
      continue;
    }
    if (v === null || typeof v !== 'object') continue;
    if (depth + 1 > maxDepth) return `nested deeper than the limit of ${maxDepth} levels`;
    if (Array.isArray(v)) for (const x of v) stack.push([x, depth + 1]);
    else
      for (const [k, x] of Object.entries(v)) {
        const p = stringProblem(k);
        if (p) return `a key ${p}`;
        stack.push([x, depth + 1]);
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
  // Characters are code points: an emoji counts once, as a reader would count it.
  if (typeof v !== 'string' || v.length === 0 || (v.length > max && [...v].length > max)) bad(field, `must be a string of 1 to ${max} characters`);
  const c = CONTROL_RE.exec(v);
  if (c) bad(field, `must not contain control characters (${cpName(c[0])} at index ${c.index})`);
  const p = stringProblem(v);
  if (p) bad(field, `must be storable I-JSON text: it ${p}`);
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

// RFC 3339 exactly: 'T', seconds, at most 6 fraction digits (what Postgres keeps), a Z or ±hh:mm offset.
const RFC3339_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:\d{2})$/;

export function timestamp(v: unknown, field: string): string {
  if (typeof v !== 'string' || !RFC3339_RE.test(v) || !isTimestamp(v))
    bad(field, 'must be an RFC 3339 timestamp (YYYY-MM-DDTHH:MM:SS[.ffffff] with Z or an offset from -23:59 to +23:59)');
  const us = parseMicros(v);
  if (us < MIN_TS || us > MAX_TS) bad(field, 'must be between years 0001 and 9999 (UTC)');
  return v;
}
export function leaseToken(v: unknown): string {
  if (v === undefined || v === null) bad('lease_token', 'is required: the lease_token the claim returned');
  if (typeof v !== 'string' || !LEASE_TOKEN_RE.test(v)) bad('lease_token', 'must be the 22-character lease_token the claim returned');
  return v;
}
/** A decimal integer argument as typed on a command line: digits only (no spaces, signs, 0x, exponents). */
export function decimalArg(text: unknown, field: string, min: number, max: number): number {
  if (typeof text !== 'string' || !/^[0-9]{1,16}$/.test(text)) bad(field, `must be a decimal integer from ${min} to ${max}`);
  return int(Number(text), field, min, max);
}
/**
 * Canonical JSON text of a JSON value (payload, result, ...), refusing what JSON cannot carry
 * exactly, values nested deeper than MAX_JSON_DEPTH and more than `maxBytes` of canonical JSON.
 */
export function payload(v: unknown, field = 'payload', maxBytes = MAX_PAYLOAD_BYTES): { value: Json; canonical: string } {
  const value0 = v === undefined ? {} : v;
  const problem = jsonProblem(value0, MAX_JSON_DEPTH);
  if (problem) bad(field, problem);
  let canonical: string;
  try {
    canonical = canonicalize(value0);
  } catch (e) {
    bad(field, (e as Error).message);
  }
  if (Buffer.byteLength(canonical) > maxBytes) bad(field, `must be at most ${maxBytes} bytes of canonical JSON (the limit)`);
  return { value: JSON.parse(canonical) as Json, canonical };
}

/** The actor and optional reason every operator action records. */
export function actorInput(input: { actor?: unknown; reason?: unknown } | undefined): { actor: string; reason: string | null } {
  return { actor: text(input?.actor, 'actor', 100)!, reason: text(input?.reason, 'reason', MAX_REASON_CHARS, true) };
}
