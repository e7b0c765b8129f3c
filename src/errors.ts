/**
 * Every error a user can cause is an OkitError with a stable string code.
 * HTTP maps `status`; the CLI maps to a non-zero exit. Anything else is a bug.
 */
export type ErrorCode =
  | 'INVALID_INPUT'
  | 'INVALID_JSON'
  | 'BAD_REQUEST'
  | 'INVALID_SEED'
  | 'JOB_NOT_FOUND'
  | 'ILLEGAL_TRANSITION'
  | 'LEASE_NOT_HELD'
  | 'JOB_CANCELED'
  | 'IDEMPOTENCY_CONFLICT'
  | 'WRITE_REFUSED'
  | 'SOURCE_NOT_FOUND'
  | 'RUN_NOT_FOUND'
  | 'SIGNATURE_NOT_FOUND'
  | 'MIGRATION_CHANGED'
  | 'MIGRATION_FAILED'
  | 'DB_UNAVAILABLE'
  | 'EMBEDDED_PG_FAILED'
  | 'LEDGER_BROKEN'
  | 'UNAUTHORIZED'
  | 'FORBIDDEN'
  | 'NOT_FOUND'
  | 'METHOD_NOT_ALLOWED'
  | 'PAYLOAD_TOO_LARGE'
  | 'UNSUPPORTED_MEDIA_TYPE'
  | 'KEY_INVALID'
  | 'IO_ERROR'
  | 'LISTEN_FAILED'
  | 'SHUTTING_DOWN'
  | 'SERVER_UNREACHABLE'
  | 'TIMEOUT'
  | 'REQUEST_TIMEOUT'
  | 'HEADERS_TOO_LARGE'
  | 'TOO_MANY_CONNECTIONS'
  | 'UNAUTHENTICATED'
  | 'SESSION_INVALID'
  | 'SESSION_EXPIRED'
  | 'LINK_USED'
  | 'LINK_EXPIRED'
  | 'CSRF_REJECTED'
  | 'TOO_MANY_IDS'
  | 'TOO_MANY_STREAMS'
  | 'INTERNAL'
  | (string & {});

const STATUS: Record<string, number> = {
  INVALID_INPUT: 400,
  INVALID_JSON: 400,
  BAD_REQUEST: 400,
  INVALID_SEED: 400,
  JOB_NOT_FOUND: 404,
  SOURCE_NOT_FOUND: 404,
  RUN_NOT_FOUND: 404,
  SIGNATURE_NOT_FOUND: 404,
  NOT_FOUND: 404,
  ILLEGAL_TRANSITION: 409,
  LEASE_NOT_HELD: 409,
  JOB_CANCELED: 409,
  IDEMPOTENCY_CONFLICT: 409,
  UNAUTHORIZED: 401,
  UNAUTHENTICATED: 401,
  SESSION_INVALID: 401,
  SESSION_EXPIRED: 401,
  LINK_USED: 401,
  LINK_EXPIRED: 401,
  CSRF_REJECTED: 403,
  TOO_MANY_IDS: 400,
  TOO_MANY_STREAMS: 429,
  FORBIDDEN: 403,
  METHOD_NOT_ALLOWED: 405,
  PAYLOAD_TOO_LARGE: 413,
  UNSUPPORTED_MEDIA_TYPE: 415,
  REQUEST_TIMEOUT: 408,
  HEADERS_TOO_LARGE: 431,
  DB_UNAVAILABLE: 503,
  TOO_MANY_CONNECTIONS: 503,
  SHUTTING_DOWN: 503,
  INTERNAL: 500,
};

export class OkitError extends Error {
  readonly code: ErrorCode;
  readonly details: Record<string, unknown> | undefined;
  constructor(code: ErrorCode, message: string, details?: Record<string, unknown>) {
    super(message);
    this.name = 'OkitError';
    this.code = code;
    this.details = details;
  }
  /** HTTP status for this error; 4xx for user errors, 5xx only for server-side conditions. */
  get status(): number {
    return STATUS[this.code] ?? 400;
  }
  toJSON(): { code: string; message: string; details?: Record<string, unknown> } {
    return this.details ? { code: this.code, message: this.message, details: this.details } : { code: this.code, message: this.message };
  }
}

export function isOkitError(e: unknown): e is OkitError {
  return e instanceof OkitError;
}
