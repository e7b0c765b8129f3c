/**
 * Bearer tokens: `okit_<43 base64url chars>` (32 random bytes). Only the sha256 is stored.
 * Scopes nest: read (first signals, reading jobs) < worker (enqueue, claim, heartbeat,
 * progress, complete, fail) < admin (also cancel any job of the tenant). `metrics` stands
 * apart: it scrapes /metrics (every tenant's figures) and nothing else, and no tenant scope
 * includes it.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { OkitError } from '../errors.js';
import { within } from '../db/errors.js';
import type { Pool } from '../db/pool.js';
import * as v from '../ledger/validate.js';
import { systemClock, type Clock } from '../util/clock.js';
import { constantTimeEqual, sha256Hex } from '../util/hash.js';
import { formatMicros } from '../util/time.js';

export const SCOPES = ['read', 'worker', 'admin', 'metrics'] as const;
export type Scope = (typeof SCOPES)[number];
const RANK: Record<Scope, number> = { read: 0, worker: 1, admin: 2, metrics: -1 };
const TOKEN_RE = /^okit_[A-Za-z0-9_-]{43}$/;

export interface Principal {
  tokenId: string;
  tenant: string;
  scope: Scope;
}

export function allows(have: Scope, need: Scope): boolean {
  if (have === 'metrics' || need === 'metrics') return have === need;
  return RANK[have] >= RANK[need];
}

export function scope(s: unknown): Scope {
  if (typeof s !== 'string' || !(SCOPES as readonly string[]).includes(s)) throw new OkitError('INVALID_INPUT', `scope: must be one of ${SCOPES.join(', ')}`, { field: 'scope' });
  return s as Scope;
}

export async function createToken(
  pool: Pool,
  input: { tenant: string; scope: string; label?: string | null },
  clock: Clock = systemClock,
): Promise<{ id: string; token: string; tenant: string; scope: Scope }> {
  const tenant = v.tenant(input.tenant);
  const sc = scope(input.scope);
  const label = v.text(input.label, 'label', 200, true);
  const token = 'okit_' + randomBytes(32).toString('base64url');
  const id = randomUUID();
  await pool.query('INSERT INTO okit.api_tokens (id, tenant, scope, token_sha256, label, created_at) VALUES ($1, $2, $3, $4, $5, $6)', [
    id,
    tenant,
    sc,
    sha256Hex(token),
    label,
    formatMicros(clock.now()),
  ]);
  return { id, token, tenant, scope: sc };
}

export async function revokeToken(pool: Pool, id: string, clock: Clock = systemClock): Promise<boolean> {
  v.uuid(id, 'token_id');
  const r = await pool.query('UPDATE okit.api_tokens SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL', [id, formatMicros(clock.now())]);
  return (r.rowCount ?? 0) > 0;
}

export interface TokenLookupOptions {
  /** Is the database answering? When not, a token not in the cache is 503 at once. */
  dbUp?: () => boolean;
  /** A lookup that takes longer is 503 (the token's validity is unknown, so never a 401). */
  lookupTimeoutMs?: number;
}

/**
 * Resolves `Authorization: Bearer …` to a principal. Positive results are cached for
 * `ttlMs` (so a revocation takes at most that long to bite everywhere). A lookup the
 * database cannot answer in time is DB_UNAVAILABLE: bounded, and never taken for "invalid".
 */
export class TokenAuth {
  private readonly cache = new Map<string, { p: Principal; at: number }>();
  constructor(
    private readonly pool: Pool,
    private readonly ttlMs = 5000,
    private readonly lookup: TokenLookupOptions = {},
  ) {}

  async authenticate(header: string | undefined, need: Scope): Promise<Principal> {
    const m = /^Bearer[ ]+(\S+)\s*$/i.exec(header ?? '');
    if (!m) throw new OkitError('UNAUTHORIZED', 'missing bearer token (Authorization: Bearer okit_…)');
    const token = m[1]!;
    if (!TOKEN_RE.test(token)) throw new OkitError('UNAUTHORIZED', 'invalid token');
    const hash = sha256Hex(token);
    let p = this.lookupCached(hash);
    if (!p) {
      if (this.lookup.dbUp && !this.lookup.dbUp()) throw new OkitError('DB_UNAVAILABLE', 'the database is unavailable, so the token cannot be checked; retry shortly');
      const ms = this.lookup.lookupTimeoutMs ?? Infinity;
      const found = await within(
        this.pool.query({
          text: 'SELECT id, tenant, scope, token_sha256 FROM okit.api_tokens WHERE token_sha256 = $1 AND revoked_at IS NULL',
          values: [hash],
          // pg's bound a second above ours only frees the connection; within() answers.
          ...(Number.isFinite(ms) ? { query_timeout: ms + 1000 } : {}),
        }),
        ms,
      );
      if (!found) throw new OkitError('DB_UNAVAILABLE', `the token could not be checked within ${ms} ms; retry shortly`);
      const r = found.rows[0];
      if (!r || !constantTimeEqual(String(r.token_sha256), hash)) throw new OkitError('UNAUTHORIZED', 'invalid token');
      p = { tokenId: String(r.id), tenant: String(r.tenant), scope: r.scope as Scope };
      this.cache.set(hash, { p, at: performance.now() });
      if (this.cache.size > 10_000) this.cache.clear();
    }
    if (!allows(p.scope, need)) throw new OkitError('FORBIDDEN', `this call needs the ${need} scope; the token has ${p.scope}`);
    return p;
  }

  private lookupCached(hash: string): Principal | undefined {
    const e = this.cache.get(hash);
    if (!e) return undefined;
    if (performance.now() - e.at > this.ttlMs) {
      this.cache.delete(hash);
      return undefined;
    }
    return e.p;
  }
}
