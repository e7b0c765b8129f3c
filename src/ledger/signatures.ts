/**
 * Failure signatures: a pattern (job type, phase, error code, and regexes over named payload
 * fields) and an outcome (likely cause, suggested action, MTTR). A job that fails for good
 * (failed, dead_lettered) or is scheduled for a retry takes the first enabled signature its facts
 * match (an operator's, most confident first, then a learned one; none: a new learned one), and
 * its history row records the match and what it learned, so replay never re-evaluates a pattern.
 *
 * Regexes are RE2 (re2-wasm): matching is linear in the input, so no pattern can backtrack
 * catastrophically, whatever it is; a pattern RE2 refuses (backreferences, lookaround, bad
 * syntax) is INVALID_INPUT with RE2's message. Patterns are bounded in length and number.
 */
import { RE2 } from 're2-wasm';
import { OkitError } from '../errors.js';
import type { Pool } from '../db/pool.js';
import type { Json } from '../util/canonical.js';
import type { Clock } from '../util/clock.js';
import { sha256Hex } from '../util/hash.js';
import { formatMicros } from '../util/time.js';
import type { SignatureRow } from './batch.js';
import { ts, tsOrNull } from './rows.js';
import { PHASES } from './types.js';
import * as v from './validate.js';

/** Characters of one regex, at most. */
export const MAX_REGEX_CHARS = 256;
/** Payload fields one pattern may test, at most. */
export const MAX_PATTERN_FIELDS = 8;
/** Enabled signatures per tenant, at most (every final failure is matched against all of them). */
export const MAX_SIGNATURES = 1000;
const PATH_RE = /^[A-Za-z0-9_-]{1,64}(\.[A-Za-z0-9_-]{1,64}){0,7}$/;
const PATTERN_KEYS = new Set(['type', 'phase', 'error_code', 'payload']);
const OUTCOME_KEYS = new Set(['likely_cause', 'suggested_action', 'mttr_p50_seconds']);

export interface SignaturePattern {
  type?: string;
  phase?: string;
  error_code?: string;
  /** Payload field (a dotted path into the payload object) → RE2 regex its string value must match. */
  payload?: Record<string, string>;
}

export interface SignatureOutcome {
  likely_cause: string;
  suggested_action?: string;
  mttr_p50_seconds?: number;
}

export interface Signature {
  id: string;
  tenant: string;
  pattern: SignaturePattern;
  outcome: SignatureOutcome;
  confidence: number;
  /** How many failures it matched (learning, issue 14). */
  sample_count: number;
  /** From sample count and recency (docs/eta.md); null before the first match. `confidence` ranks matches: the operator's own value, or this one for a learned signature. */
  learned_confidence: number | null;
  /** The last failure it matched; null before the first. */
  last_seen: string | null;
  /** Median of its recent failure → next success intervals; null before the first such success. */
  mttr_p50_seconds: number | null;
  /** Set for a signature the ledger learned by itself: the {type, phase, error_code} it stands for. */
  learned_key: SignaturePattern | null;
  enabled: boolean;
  created_at: string;
  created_by: string | null;
  retired_at: string | null;
  retired_by: string | null;
}

// Compiled regexes by source, least recently used evicted (and freed: re2-wasm objects hold wasm memory).
const compiled = new Map<string, RE2>();
const MAX_COMPILED = 1024;

function re2(source: string): RE2 {
  let r = compiled.get(source);
  if (r) {
    compiled.delete(source);
    compiled.set(source, r);
    return r;
  }
  r = new RE2(source, 'u');
  compiled.set(source, r);
  if (compiled.size > MAX_COMPILED) {
    const [oldest, old] = compiled.entries().next().value as [string, RE2];
    compiled.delete(oldest);
    (old as unknown as { wrapper?: { delete?: () => void } }).wrapper?.delete?.();
  }
  return r;
}

function bad(field: string, why: string, extra: Record<string, unknown> = {}): never {
  throw new OkitError('INVALID_INPUT', `${field}: ${why}`, { field, ...extra });
}

/** A validated pattern (at least one condition); regexes compiled once to prove they are valid RE2. */
export function validatePattern(raw: unknown): SignaturePattern {
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) bad('pattern', 'must be an object {type?, phase?, error_code?, payload?}');
  const p = raw as Record<string, unknown>;
  for (const k of Object.keys(p)) if (!PATTERN_KEYS.has(k)) bad(`pattern.${k}`, 'unknown field (type, phase, error_code, payload)');
  const out: SignaturePattern = {};
  if (p.type != null) out.type = v.jobType(p.type, 'pattern.type');
  if (p.phase != null) {
    if (typeof p.phase !== 'string' || !(PHASES as readonly string[]).includes(p.phase)) bad('pattern.phase', `must be one of ${PHASES.join(', ')}`);
    out.phase = p.phase;
  }
  if (p.error_code != null) {
    try {
      out.error_code = v.errorCode(p.error_code);
    } catch {
      bad('pattern.error_code', 'must match ^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$');
    }
  }
  if (p.payload != null) {
    if (typeof p.payload !== 'object' || Array.isArray(p.payload)) bad('pattern.payload', 'must be an object {field: regex}');
    const fields = Object.entries(p.payload as Record<string, unknown>);
    if (fields.length === 0 || fields.length > MAX_PATTERN_FIELDS) bad('pattern.payload', `must name 1 to ${MAX_PATTERN_FIELDS} payload fields`);
    out.payload = {};
    for (const [path, src] of fields) {
      const field = `pattern.payload.${path}`;
      if (!PATH_RE.test(path)) bad(field, 'the field must be a dotted path of up to 8 names of [A-Za-z0-9_-]');
      if (typeof src !== 'string' || src.length === 0 || src.length > MAX_REGEX_CHARS) bad(field, `must be a regex of 1 to ${MAX_REGEX_CHARS} characters`);
      if (/[\u0000]/.test(src)) bad(field, 'must not contain NUL');
      try {
        re2(src);
      } catch (e) {
        bad(field, `not a valid RE2 regex: ${(e as Error).message.replace(/^Invalid regular expression: \/.*?\/u: /s, '')}`, { reason: 'regex' });
      }
      out.payload[path] = src;
    }
  }
  if (Object.keys(out).length === 0) bad('pattern', 'must set at least one of type, phase, error_code, payload');
  return out;
}

export function validateOutcome(raw: unknown): SignatureOutcome {
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) bad('outcome', 'must be an object {likely_cause, suggested_action?, mttr_p50_seconds?}');
  const o = raw as Record<string, unknown>;
  for (const k of Object.keys(o)) if (!OUTCOME_KEYS.has(k)) bad(`outcome.${k}`, 'unknown field (likely_cause, suggested_action, mttr_p50_seconds)');
  const out: SignatureOutcome = { likely_cause: v.text(o.likely_cause, 'outcome.likely_cause', v.MAX_REASON_CHARS)! };
  const action = v.text(o.suggested_action, 'outcome.suggested_action', v.MAX_REASON_CHARS, true);
  if (action) out.suggested_action = action;
  if (o.mttr_p50_seconds != null) out.mttr_p50_seconds = v.int(o.mttr_p50_seconds, 'outcome.mttr_p50_seconds', 0, 31_536_000);
  return out;
}

function fieldValue(payload: Json, path: string): string | null {
  let cur: Json | undefined = payload;
  for (const k of path.split('.')) {
    if (!cur || typeof cur !== 'object' || Array.isArray(cur)) return null;
    cur = (cur as { [k: string]: Json })[k];
  }
  if (typeof cur === 'string') return cur;
  if (typeof cur === 'number' || typeof cur === 'boolean') return String(cur);
  return null;
}

/** The facts of a final failure a pattern is matched against. */
export interface FailureFacts {
  type: string;
  phase: string;
  error_code: string;
  payload: Json;
}

/** Whether every condition of the pattern holds for the facts (unknown keys never match, as before). */
export function patternMatches(pattern: { [k: string]: Json }, f: FailureFacts): boolean {
  for (const [k, want] of Object.entries(pattern)) {
    if (k === 'type' || k === 'phase' || k === 'error_code') {
      if (f[k] !== want) return false;
    } else if (k === 'payload') {
      if (!want || typeof want !== 'object' || Array.isArray(want)) return false;
      for (const [path, src] of Object.entries(want)) {
        const value = fieldValue(f.payload, path);
        if (value === null || typeof src !== 'string') return false;
        try {
          if (!re2(src).test(value)) return false;
        } catch {
          return false;
        }
      }
    } else return false;
  }
  return true;
}

/** The first signature (most confident first) that matches, as recorded in history: {id, likely_cause, ...}. */
export function matchSignature(sigs: readonly SignatureRow[], f: FailureFacts): { [k: string]: Json } | null {
  for (const s of sigs) if (patternMatches(s.pattern, f)) return { id: s.id, ...s.outcome };
  return null;
}

// ---------------------------------------------------------------- learning (issue 14, docs/eta.md)

/** Recent failure → next success intervals a signature's MTTR is the median of (migration 015's CHECK). */
export const MTTR_SAMPLES = 50;
/**
 * Learned signatures per tenant, at most (error codes come from workers: a flood of distinct
 * codes must not grow the table, or every failure's matching, without bound). Past it a failure
 * that matches nothing is recorded without a signature.
 */
export const MAX_LEARNED_SIGNATURES = 1000;
const DAY_US = 86_400_000_000;

/**
 * confidence = (1 − e^(−n/5)) × 2^(−age_days/14), rounded to 3 decimals: n samples, age_days the
 * gap since the signature was last seen before this failure (0 for its first). The ETA's formula
 * (docs/eta.md): evidence saturates after ~15 samples, and a signature back after two weeks of
 * silence counts half until it is seen again.
 */
export function signatureConfidence(n: number, ageDays: number): number {
  const c = (1 - Math.exp(-Math.max(0, n) / 5)) * 2 ** (-Math.max(0, ageDays) / 14);
  return Math.round(c * 1000) / 1000;
}

/** A learned signature's id: a UUID from its tenant and key, so the same failures learn the same id everywhere (simulations included). */
export function learnedSignatureId(tenant: string, key: { type: string; phase: string; error_code: string }): string {
  const h = sha256Hex(`okit:learned-signature:${tenant}:${key.type}:${key.phase}:${key.error_code}`);
  const variant = ((parseInt(h[16]!, 16) & 0x3) | 0x8).toString(16);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-5${h.slice(13, 16)}-${variant}${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

function medianUs(xs: readonly bigint[]): bigint | null {
  if (xs.length === 0) return null;
  const sorted = [...xs].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  return sorted[Math.ceil(sorted.length / 2) - 1]!;
}

/**
 * A failure's signature, learning: the matching signature (an operator's first, then a learned
 * one), else a new learned one keyed type:phase:error_code, with sample_count + 1, last_seen,
 * confidence and the MTTR known so far. Answers what the failure's history row records as
 * `data.signature` (the triggers of migration 015 write it to the table) and moves the batch's
 * in-memory copy, so a second failure in the same batch counts the first. The operator's outcome
 * (likely_cause, suggested_action) is copied as it is, never changed.
 */
export function learnSignature(sigs: SignatureRow[], tenant: string, f: FailureFacts, atUs: bigint, at: string): { [k: string]: Json } | null {
  let s = sigs.find((x) => !x.retired && patternMatches(x.pattern, f));
  if (!s) {
    const key = { type: f.type, phase: f.phase, error_code: f.error_code };
    const id = learnedSignatureId(tenant, key);
    // An operator retired this learned signature: it is not learned again.
    if (sigs.some((x) => x.id === id)) return null;
    if (sigs.filter((x) => x.learnedKey).length >= MAX_LEARNED_SIGNATURES) return null;
    s = { id, pattern: key, outcome: {}, learnedKey: key, sampleCount: 0, lastSeenUs: null, mttrUs: [] };
    sigs.push(s);
  }
  const n = (s.sampleCount ?? 0) + 1;
  const age = s.lastSeenUs != null && atUs > s.lastSeenUs ? Number(atUs - s.lastSeenUs) / DAY_US : 0;
  const confidence = signatureConfidence(n, age);
  s.sampleCount = n;
  s.lastSeenUs = s.lastSeenUs != null && s.lastSeenUs > atUs ? s.lastSeenUs : atUs;
  const learnedMttr = medianUs(s.mttrUs ?? []);
  const operatorMttr = typeof s.outcome.mttr_p50_seconds === 'number' ? s.outcome.mttr_p50_seconds : null;
  const mttr = learnedMttr !== null ? Number(learnedMttr) / 1e6 : operatorMttr;
  const out: { [k: string]: Json } = { id: s.id, ...s.outcome, sample_count: n, last_seen: at, confidence, mttr_samples: (s.mttrUs ?? []).length };
  if (mttr !== null) out.mttr_p50_seconds = mttr;
  else delete out.mttr_p50_seconds;
  if (s.learnedKey) out.learned = s.learnedKey;
  return out;
}

const COLUMNS =
  'id, tenant, pattern, outcome, confidence, sample_count, enabled, created_at, created_by, retired_at, retired_by, learned_key, learned_confidence, last_seen, mttr_us::text[] AS mttr_us';

function toSignature(r: Record<string, unknown>): Signature {
  return {
    id: String(r.id),
    tenant: String(r.tenant),
    pattern: JSON.parse(String(r.pattern)) as SignaturePattern,
    outcome: JSON.parse(String(r.outcome)) as SignatureOutcome,
    confidence: Number(r.confidence),
    sample_count: Number(r.sample_count),
    enabled: r.enabled === true || r.enabled === 't',
    created_at: ts(r.created_at),
    created_by: (r.created_by ?? null) as string | null,
    retired_at: tsOrNull(r.retired_at),
    retired_by: (r.retired_by ?? null) as string | null,
    learned_confidence: r.learned_confidence == null ? null : Number(r.learned_confidence),
    last_seen: tsOrNull(r.last_seen),
    mttr_p50_seconds: ((m) => (m === null ? null : Number(m) / 1e6))(medianUs(((r.mttr_us as string[] | null) ?? []).map((x) => BigInt(x)))),
    learned_key: r.learned_key == null ? null : (JSON.parse(String(r.learned_key)) as SignaturePattern),
  };
}

export class SignatureOps {
  constructor(private readonly l: { pool: Pool; clock: Clock; ids: () => string }) {}

  /**
   * Adds a signature; the same pattern again updates the stored one's outcome and confidence
   * (and un-retires it), keeping its id. Answers the signature and whether it was created.
   */
  async add(
    tenant: string,
    input: { pattern: unknown; outcome: unknown; confidence?: number; id?: string; actor?: string | null },
  ): Promise<{ signature: Signature; created: boolean }> {
    v.tenant(tenant);
    const pattern = validatePattern(input.pattern);
    const outcome = validateOutcome(input.outcome);
    const patternText = v.payload(pattern, 'pattern').canonical;
    const id = input.id ? v.uuid(input.id) : this.l.ids();
    const confidence = input.confidence === undefined || input.confidence === null ? 0.5 : v.num(input.confidence, 'confidence', 0, 1);
    const actor = v.text(input.actor, 'actor', 100, true);
    const { rows: count } = await this.l.pool.query('SELECT count(*)::int AS n FROM okit.failure_signatures WHERE tenant = $1 AND enabled AND retired_at IS NULL AND learned_key IS NULL', [tenant]);
    if (count[0].n >= MAX_SIGNATURES) throw new OkitError('INVALID_INPUT', `a tenant has at most ${MAX_SIGNATURES} active signatures: retire some first`, { field: 'pattern', limit: MAX_SIGNATURES });
    const { rows } = await this.l.pool
      .query(
        `INSERT INTO okit.failure_signatures (id, tenant, signature_sha256, pattern, outcome, confidence, created_at, created_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT (tenant, signature_sha256) DO UPDATE SET outcome = EXCLUDED.outcome, confidence = EXCLUDED.confidence, enabled = true, retired_at = NULL, retired_by = NULL
         RETURNING ${COLUMNS}, (xmax = 0) AS created`,
        [id, tenant, sha256Hex(patternText), patternText, v.payload(outcome, 'outcome').canonical, confidence, formatMicros(this.l.clock.now()), actor],
      )
      .catch((e) => {
        const err = e as { code?: string; constraint?: string };
        if (err.code === '23505' && err.constraint?.endsWith('_pkey')) throw new OkitError('INVALID_INPUT', `id ${id} is already taken`, { field: 'id' });
        throw e;
      });
    return { signature: toSignature(rows[0]), created: rows[0].created === true };
  }

  async get(tenant: string, id: string): Promise<Signature> {
    v.tenant(tenant);
    v.uuid(id, 'signature_id');
    const { rows } = await this.l.pool.query(`SELECT ${COLUMNS} FROM okit.failure_signatures WHERE tenant = $1 AND id = $2`, [tenant, id]);
    if (!rows[0]) throw new OkitError('SIGNATURE_NOT_FOUND', `signature ${id} not found`, { signature_id: id });
    return toSignature(rows[0]);
  }

  /** The tenant's signatures, most confident first; retired ones only when asked. */
  async list(tenant: string, opts: { includeRetired?: boolean } = {}): Promise<Signature[]> {
    v.tenant(tenant);
    const { rows } = await this.l.pool.query(
      `SELECT ${COLUMNS} FROM okit.failure_signatures WHERE tenant = $1 ${opts.includeRetired ? '' : 'AND retired_at IS NULL'} ORDER BY learned_key IS NOT NULL, confidence DESC, id`,
      [tenant],
    );
    return rows.map(toSignature);
  }

  /** Retires a signature: it no longer matches; history rows that recorded it keep its outcome. */
  async retire(tenant: string, id: string, actor: string): Promise<Signature> {
    v.tenant(tenant);
    v.uuid(id, 'signature_id');
    const { rows } = await this.l.pool.query(
      `UPDATE okit.failure_signatures SET retired_at = coalesce(retired_at, $3), retired_by = coalesce(retired_by, $4), enabled = false
       WHERE tenant = $1 AND id = $2 RETURNING ${COLUMNS}`,
      [tenant, id, formatMicros(this.l.clock.now()), v.text(actor, 'actor', 100)],
    );
    if (!rows[0]) throw new OkitError('SIGNATURE_NOT_FOUND', `signature ${id} not found`, { signature_id: id });
    return toSignature(rows[0]);
  }
}
