import type { IncomingMessage } from 'node:http';
import { OkitError } from '../errors.js';
import { MAX_JSON_DEPTH } from '../ledger/validate.js';
import { formatPath, parseStrictJson, StrictJsonError } from '../util/strict-json.js';
import { inexactNumber } from '../util/canonical.js';

export const MAX_BODY_BYTES = 256 * 1024;

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/**
 * Reads a JSON object body, refusing more than `max` bytes (413) as soon as it is exceeded,
 * a non-JSON content type (415), and (400 INVALID_JSON) malformed UTF-8 or JSON, and what
 * I-JSON forbids: duplicate keys, lone surrogates, noncharacters, numbers beyond a double,
 * and any field nested deeper than MAX_JSON_DEPTH (the body object itself is not counted).
 * An empty body is `{}`.
 */
export async function readJson(req: IncomingMessage, max = MAX_BODY_BYTES): Promise<Record<string, unknown>> {
  const declared = Number(req.headers['content-length'] ?? NaN);
  if (Number.isFinite(declared) && declared > max) {
    req.resume();
    throw new OkitError('PAYLOAD_TOO_LARGE', `body exceeds ${max} bytes (the limit)`, { limit: max });
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > max) {
      req.resume();
      throw new OkitError('PAYLOAD_TOO_LARGE', `body exceeds ${max} bytes (the limit)`, { limit: max });
    }
    chunks.push(chunk);
  }
  if (size === 0) return {};
  const type = String(req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  if (type !== 'application/json') throw new OkitError('UNSUPPORTED_MEDIA_TYPE', 'body must be application/json');
  return parseBody(Buffer.concat(chunks));
}

/** The strict parse of a request body (exported for tests and other doors). */
export function parseBody(bytes: Uint8Array): Record<string, unknown> {
  let text: string;
  try {
    text = utf8.decode(bytes);
  } catch {
    throw new OkitError('INVALID_JSON', 'body is not valid UTF-8', { reason: 'utf8' });
  }
  let value: unknown;
  try {
    value = parseStrictJson(text, { maxDepth: MAX_JSON_DEPTH + 1 });
  } catch (e) {
    if (!(e instanceof StrictJsonError)) throw e;
    const field = typeof e.path[0] === 'string' ? e.path[0] : undefined;
    const details: Record<string, unknown> = { reason: e.reason, line: e.line, column: e.column, path: formatPath(e.path) };
    if (field !== undefined) details.field = field;
    if (e.key !== undefined) details.key = e.key;
    if (e.reason === 'too_deep') {
      details.limit = MAX_JSON_DEPTH;
      throw new OkitError('INVALID_JSON', `${field ?? 'body'}: nested deeper than the limit of ${MAX_JSON_DEPTH} levels at line ${e.line}, column ${e.column}`, details);
    }
    throw new OkitError('INVALID_JSON', `body is not valid I-JSON: ${e.message}`, details);
  }
  // A number that would be silently rounded is refused, not stored changed (number policy: docs/bundle-format.md §2).
  const inexact = inexactNumber(text);
  if (inexact) throw new OkitError('INVALID_INPUT', `body: ${inexact}`, { reason: 'inexact_number' });
  if (!value || typeof value !== 'object' || Array.isArray(value)) throw new OkitError('INVALID_JSON', 'body must be a JSON object');
  return value as Record<string, unknown>;
}
