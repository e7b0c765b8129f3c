/**
 * Errors → HTTP. User errors are OkitErrors (4xx by code); a lost database is 503; anything
 * else is a bug and the only path to a 500.
 */
import { isDbUnavailable } from '../db/errors.js';
import { OkitError, isOkitError } from '../errors.js';

export { isDbUnavailable };

export function toOkitError(e: unknown): OkitError {
  if (isOkitError(e)) return e;
  if (isDbUnavailable(e)) return new OkitError('DB_UNAVAILABLE', 'the database is unavailable; retry shortly');
  return new OkitError('INTERNAL', 'internal error');
}

export function errorBody(e: OkitError): string {
  return JSON.stringify({ error: e.toJSON() });
}
