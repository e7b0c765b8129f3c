import type { ServerResponse } from 'node:http';
import { errorBody, toOkitError } from './errors.js';

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': String(Buffer.byteLength(text)), ...headers });
  res.end(text);
}

export function sendError(res: ServerResponse, e: unknown): void {
  const err = toOkitError(e);
  if (res.headersSent || res.destroyed) {
    res.destroy();
    return;
  }
  const headers: Record<string, string> = {};
  const allow = err.details?.allow;
  if (Array.isArray(allow)) headers.Allow = allow.join(', ');
  if (err.code === 'UNAUTHORIZED') headers['WWW-Authenticate'] = 'Bearer';
  if (err.code === 'DB_UNAVAILABLE') headers['Retry-After'] = '1';
  if (err.code === 'TOO_MANY_STREAMS') headers['Retry-After'] = String(err.details?.retry_after_seconds ?? 5);
  const text = errorBody(err);
  res.writeHead(err.status, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': String(Buffer.byteLength(text)), ...headers });
  res.end(text);
}
