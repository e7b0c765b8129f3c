/** Line schemas of the data files: exact field sets and types (queues.jsonl from format v3). */
import { isCanonicalTimestamp } from '../util/time.js';

type O = Record<string, unknown>;
const POS = /^[1-9][0-9]{0,18}$/;

// Lower-case hex digits, by char code (a table lookup per char: 2-3x faster than the regexes
// /^[0-9a-f]{64}$/ and validate.ts's UUID_RE, which this agrees with; checked for every line).
const HEX = new Uint8Array(128);
for (const ch of '0123456789abcdef') HEX[ch.charCodeAt(0)] = 1;
function isHex64(v: unknown): boolean {
  if (typeof v !== 'string' || v.length !== 64) return false;
  for (let i = 0; i < 64; i++) if (HEX[v.charCodeAt(i)] !== 1) return false;
  return true;
}
/** The form isUuid accepts: 8-4-4-4-12 lower-case hex digits. */
function isUuidText(v: unknown): boolean {
  if (typeof v !== 'string' || v.length !== 36) return false;
  for (let i = 0; i < 36; i++) {
    const c = v.charCodeAt(i);
    if (i === 8 || i === 13 || i === 18 || i === 23) {
      if (c !== 0x2d) return false;
    } else if (HEX[c] !== 1) return false;
  }
  return true;
}

const str = (v: unknown) => typeof v === 'string';
const strOrNull = (v: unknown) => v === null || typeof v === 'string';
const int = (v: unknown) => typeof v === 'number' && Number.isSafeInteger(v);
const obj = (v: unknown) => typeof v === 'object' && v !== null && !Array.isArray(v);
const uuid = isUuidText;
const uuidOrNull = (v: unknown) => v === null || uuid(v);
const hex = isHex64;
const ts = isCanonicalTimestamp;
const tsOrNull = (v: unknown) => v === null || ts(v);
const pos = (v: unknown) => typeof v === 'string' && POS.test(v);
const any = () => true;

type Schema = Record<string, (v: unknown) => boolean>;

export const HISTORY_SCHEMA: Schema = {
  tenant: str, pos, job_id: uuid, n: (v) => int(v) && (v as number) >= 1, at: ts, event: str, from_state: strOrNull, to_state: str,
  data: obj, prev_hash: (v) => v === null || hex(v), hash: hex,
};
export const THROTTLE_SCHEMA: Schema = { tenant: str, pos, host: str, at: ts, event: str, data: obj };
export const QUEUE_SCHEMA: Schema = { tenant: str, pos, type: str, at: ts, event: str, data: obj };
export const JOB_SCHEMA: Schema = {
  id: uuid, tenant: str, run_id: uuidOrNull, source_id: uuidOrNull, type: str, payload: any, payload_sha256: hex,
  idempotency_key: strOrNull, priority: int, max_attempts: int, attempt: int, state: str, not_before: ts, lease_owner: strOrNull,
  lease_expires_at: tsOrNull, created_at: ts, updated_at: ts, history_n: int, last_hash: hex,
};
export const SNAPSHOT_SCHEMA: Schema = {
  job_id: uuid, tenant: str, run_id: uuidOrNull, kind: str, phase: str, summary: str, eta_seconds: (v) => v === null || int(v),
  last_known_outcome: (v) => v === null || obj(v), next_actions: (v) => v === null || Array.isArray(v), diagnostics: obj,
  source: str, history_n: int, history_hash: hex, created_at: ts, updated_at: ts,
};

/** A schema's fields in canonical (sorted) key order, built once. */
const sortedOf = new WeakMap<Schema, { keys: string[]; preds: Array<(v: unknown) => boolean> }>();

/** Returns the first schema violation of a parsed line, or null. */
export function schemaProblem(v: unknown, schema: Schema): string | null {
  if (!obj(v)) return 'not an object';
  const o = v as O;
  let sorted = sortedOf.get(schema);
  if (!sorted) {
    const keys = Object.keys(schema).sort();
    sortedOf.set(schema, (sorted = { keys, preds: keys.map((k) => schema[k]!) }));
  }
  // Fast path, no allocation: a canonical line lists its keys sorted, so they enumerate as
  // exactly the schema's sorted keys, each well formed. (An inherited enumerable key would
  // enumerate after the own ones and fail the comparison.)
  const { keys, preds } = sorted;
  let i = 0;
  let ok = true;
  for (const k in o) {
    if (i >= keys.length || k !== keys[i] || !preds[i]!(o[k])) {
      ok = false;
      break;
    }
    i++;
  }
  if (ok && i === keys.length) return null;
  // Otherwise name the first problem, in this order.
  for (const k of Object.keys(o)) if (!Object.hasOwn(schema, k)) return `unexpected field ${k}`;
  for (const [k, ok] of Object.entries(schema)) {
    if (!Object.hasOwn(o, k)) return `missing field ${k}`;
    if (!ok(o[k])) return `field ${k} has the wrong type or form`;
  }
  return null;
}
