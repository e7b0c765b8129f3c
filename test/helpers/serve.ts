/** An in-process `okit serve` on a test database, with tokens for each scope. */
import { Ledger } from '../../src/ledger/ledger.js';
import { startServer, type RunningServer, type ServerOptions } from '../../src/http/server.js';
import { createToken } from '../../src/http/tokens.js';
import type { Pool } from '../../src/db/pool.js';

export interface TestServer {
  srv: RunningServer;
  ledger: Ledger;
  base: string;
  tokens: { read: string; worker: string; admin: string; otherRead: string; otherAdmin: string };
  get(path: string, token: string | null, headers?: Record<string, string>): Promise<Response>;
  post(path: string, token: string | null, body?: unknown, headers?: Record<string, string>): Promise<Response>;
}

export async function startTestServer(url: string, pool: Pool, opts: Partial<ServerOptions> = {}, tenant = 'acme'): Promise<TestServer> {
  const ledger = new Ledger(pool);
  const srv = await startServer({ url, pool, ledger, port: 0, ...opts });
  const tok = async (t: string, scope: string) => (await createToken(pool, { tenant: t, scope })).token;
  const tokens = {
    read: await tok(tenant, 'read'),
    worker: await tok(tenant, 'worker'),
    admin: await tok(tenant, 'admin'),
    otherRead: await tok('other', 'read'),
    otherAdmin: await tok('other', 'admin'),
  };
  const auth = (token: string | null): Record<string, string> => (token ? { Authorization: `Bearer ${token}` } : {});
  return {
    srv,
    ledger,
    base: srv.baseUrl,
    tokens,
    get: (path, token, headers = {}) => fetch(srv.baseUrl + path, { headers: { ...auth(token), ...headers } }),
    post: (path, token, body, headers = {}) =>
      fetch(srv.baseUrl + path, {
        method: 'POST',
        headers: { ...auth(token), ...(body === undefined ? {} : { 'Content-Type': 'application/json' }), ...headers },
        body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
      }),
  };
}

export const FS = (id: string) => `/api/v1/orchestrator/jobs/${id}/first-signal`;
export const STREAM = (id: string) => `/api/v1/orchestrator/stream/jobs/${id}/first-signal`;
