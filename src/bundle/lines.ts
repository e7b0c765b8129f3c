/** Line schemas of the four data files: exact field sets and types (format v1). */
import { isUuid } from '../ledger/validate.js';
import { isCanonicalTimestamp } from '../util/time.js';

type O = Record<string, unknown>;
const HEX64 = /^[0-9a-f]{64}$/;
const POS = /^[1-9][0-9]{0,18}$/;

const str = (v: unknown) => typeof v === 'string';
const strOrNull = (v: unknown) => v === null || typeof v === 'string';
const int = (v: unknown) => typeof v === 'number' && Number.isSafeInteger(v);
const obj = (v: unknown) => typeof v === 'object' && v !== null && !Array.isArray(v);
const uuid = isUuid;
const uuidOrNull = (v: unknown) => v === null || uuid(v);
const hex = (v: unknown) => typeof v === 'string' && HEX64.test(v);
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

/** Returns the first schema violation of a parsed line, or null. */
export function schemaProblem(v: unknown, schema: Schema): string | null {
  if (!obj(v)) return 'not an object';
  const o = v as O;
  for (const k of Object.keys(o)) if (!Object.hasOwn(schema, k)) return `unexpected field ${k}`;
  for (const [k, ok] of Object.entries(schema)) {
    if (!Object.hasOwn(o, k)) return `missing field ${k}`;
    if (!ok(o[k])) return `field ${k} has the wrong type or form`;
  }
  return null;
}
