/**
 * "The database cannot answer right now" (a 503, retry later) as opposed to a bug (a 500):
 * network and connection errors, Postgres' connection/resource/operator classes, a read-only
 * server (a standby, or a primary being demoted), and okit's own client-side timeouts.
 */
const PG_UNAVAILABLE_CLASSES = ['08', '53', '57']; // connection, resources, operator intervention (incl. statement_timeout)
const PG_UNAVAILABLE_CODES = new Set(['25006']); // read_only_sql_transaction: pointed at a standby
const NET_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'ENOTFOUND', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN']);
const MESSAGES =
  /Connection terminated|connection timeout|Client has encountered a connection error|Cannot use a pool after calling end|timeout exceeded when trying to connect|Query read timeout|Client was closed and is not queryable/i;

export function isDbUnavailable(e: unknown): boolean {
  if (!e || typeof e !== 'object') return false;
  const err = e as { code?: unknown; message?: unknown };
  const code = typeof err.code === 'string' ? err.code : '';
  if (code === 'DB_UNAVAILABLE' || NET_CODES.has(code) || PG_UNAVAILABLE_CODES.has(code)) return true;
  if (/^[0-9A-Z]{5}$/.test(code) && PG_UNAVAILABLE_CLASSES.includes(code.slice(0, 2))) return true;
  const msg = typeof err.message === 'string' ? err.message : '';
  return MESSAGES.test(msg);
}

/**
 * A timeout rather than a refusal or a lost connection: trying again would wait as long again,
 * so callers that retry once on an unavailable database do not retry these (the answer stays bounded).
 */
export function isDbTimeout(e: unknown): boolean {
  if (!e || typeof e !== 'object') return false;
  const err = e as { code?: unknown; message?: unknown };
  if (err.code === '57014' || err.code === 'ETIMEDOUT') return true;
  return typeof err.message === 'string' && /timeout|timed out/i.test(err.message);
}

/**
 * Settles with p's value, or with undefined once `ms` have passed (p keeps running; its late
 * rejection is swallowed). For answers that are due at a time whatever the database does.
 * The bound gives way to an answer that arrived meanwhile: after an event-loop stall, timers
 * run before pending I/O, so the timeout waits one turn (setImmediate) for what already came.
 */
export function within<T>(p: Promise<T>, ms: number): Promise<T | undefined> {
  if (!Number.isFinite(ms)) return p;
  return new Promise<T | undefined>((resolve, reject) => {
    const timer = setTimeout(() => setImmediate(() => resolve(undefined)), Math.max(0, ms));
    p.then(
      (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      (e) => {
        clearTimeout(timer);
        reject(e);
      },
    );
  });
}
