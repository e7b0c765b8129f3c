/**
 * `--metrics-listen HOST:PORT`: a second HTTP listener that serves only GET /metrics, without
 * a token, for a Prometheus on the same host. Only loopback addresses are accepted: anything
 * that can reach it can read every tenant's figures.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { isIP } from 'node:net';
import { OkitError } from '../errors.js';
import { sendError } from '../http/send.js';
import type { OkitMetrics } from './metrics.js';

export function isLoopback(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '');
  if (h === 'localhost' || h === '::1') return true;
  return isIP(h) === 4 && h.startsWith('127.');
}

/** Parses `HOST:PORT` (`[::1]:9464`, `127.0.0.1:0`); refuses anything but loopback. */
export function parseMetricsListen(s: string): { host: string; port: number } {
  const m = /^(\[[0-9a-fA-F:]+\]|[^:\s]+):(\d{1,5})$/.exec(s.trim());
  const port = m ? Number(m[2]) : NaN;
  if (!m || port > 65535) throw new OkitError('INVALID_INPUT', `--metrics-listen: must be HOST:PORT, got ${JSON.stringify(s)}`);
  const host = m[1]!.replace(/^\[|\]$/g, '');
  if (!isLoopback(host))
    throw new OkitError('INVALID_INPUT', `--metrics-listen: ${host} is not a loopback address; the unauthenticated scrape listener binds 127.0.0.0/8, ::1 or localhost only (elsewhere, scrape /metrics on the main port with a metrics token)`);
  return { host, port };
}

export interface MetricsListener {
  host: string;
  port: number;
  url: string;
  close(): Promise<void>;
}

export async function startMetricsListener(metrics: OkitMetrics, where: { host: string; port: number }): Promise<MetricsListener> {
  if (!isLoopback(where.host)) throw new OkitError('INVALID_INPUT', `metrics listener: ${where.host} is not a loopback address`);
  const server = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    void (async () => {
      try {
        if (path !== '/metrics') throw new OkitError('NOT_FOUND', 'this listener serves GET /metrics only');
        if (req.method !== 'GET' && req.method !== 'HEAD') throw new OkitError('METHOD_NOT_ALLOWED', `${req.method} is not allowed here; use GET`, { allow: ['GET'] });
        const text = await metrics.exposition();
        res.writeHead(200, { 'Content-Type': metrics.contentType, 'Content-Length': String(Buffer.byteLength(text)), 'Cache-Control': 'no-store' });
        res.end(text);
      } catch (e) {
        sendError(res, e);
      }
    })();
  });
  server.on('clientError', (_e, socket) => socket.destroy());
  server.requestTimeout = 10_000;
  server.headersTimeout = 5_000;
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(where.port, where.host, () => resolve());
    });
  } catch (e) {
    throw new OkitError('LISTEN_FAILED', `cannot listen on ${where.host}:${where.port} for metrics: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
  }
  const a = server.address() as AddressInfo;
  const hostForUrl = a.family === 'IPv6' ? `[${a.address}]` : a.address;
  return {
    host: a.address,
    port: a.port,
    url: `http://${hostForUrl}:${a.port}/metrics`,
    close: () =>
      new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
      }),
  };
}
