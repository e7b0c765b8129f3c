import type { IncomingMessage } from 'node:http';
import { OkitError } from '../errors.js';
import { inexactNumber } from '../util/canonical.js';

export const MAX_BODY_BYTES = 256 * 1024;

/**
 * Reads a JSON object body, refusing more than `max` bytes (413) as soon as it is exceeded,
 * a non-JSON content type (415) and malformed JSON (400). An empty body is `{}`.
 */
export async function readJson(req: IncomingMessage, max = MAX_BODY_BYTES): Promise<Record<string, unknown>> {
  const declared = Number(req.headers['content-length'] ?? NaN);
  if (Number.isFinite(declared) && declared > max) {
    req.resume();
    throw new OkitError('PAYLOAD_TOO_LARGE', `body exceeds ${max} bytes`);
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > max) {
      req.resume();
      throw new OkitError('PAYLOAD_TOO_LARGE', `body exceeds ${max} bytes`);
    }
    chunks.push(chunk);
  }
  if (size === 0) return {};
  const type = String(req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  if (type !== 'application/json') throw new OkitError('UNSUPPORTED_MEDIA_TYPE', 'body must be application/json');
  let value: unknown;
  const text = Buffer.concat(chunks).toString('utf8');
  try {
    value = JSON.parse(text);
  } catch {
    throw new OkitError('INVALID_JSON', 'body is not valid JSON');
  }
  // A number that JSON.parse would silently round is refused, not stored changed (number policy: docs/bundle-format.md §2).
  const inexact = inexactNumber(text);
  if (inexact) throw new OkitError('INVALID_INPUT', `body: ${inexact}`);
  if (!value || typeof value !== 'object' || Array.isArray(value)) throw new OkitError('INVALID_JSON', 'body must be a JSON object');
  return value as Record<string, unknown>;
}
