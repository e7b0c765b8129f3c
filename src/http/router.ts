/** A tiny method+path router: patterns like `/api/v1/orchestrator/jobs/:id/complete`. */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { OkitError } from '../errors.js';

export interface Ctx {
  req: IncomingMessage;
  res: ServerResponse;
  params: Record<string, string>;
  query: URLSearchParams;
  /** When the request was routed (performance.now()): the start of the server's part of an answer. */
  t0?: number;
}

export type Handler = (ctx: Ctx) => Promise<void>;

interface Route {
  method: string;
  pattern: string;
  parts: string[];
  handler: Handler;
}

export class Router {
  private readonly routes: Route[] = [];

  add(method: string, pattern: string, handler: Handler): this {
    this.routes.push({ method, pattern, parts: pattern.split('/').filter(Boolean), handler });
    return this;
  }

  /** Every route, in the order added: the table tests derive their lists from (a new route without a row fails them). */
  table(): Array<{ method: string; pattern: string }> {
    return this.routes.map(({ method, pattern }) => ({ method, pattern }));
  }

  /**
   * The handler for a request, or a 404/405 OkitError. Segments are taken exactly as sent:
   * `//healthz`, `/healthz/` and an empty id are not routes.
   */
  match(method: string, pathname: string): { handler: Handler; params: Record<string, string> } {
    const segs = pathname === '/' ? [] : pathname.slice(1).split('/'); // `/` is the route with no segments
    const allowed: string[] = [];
    for (const r of this.routes) {
      if (r.parts.length !== segs.length) continue;
      const params: Record<string, string> = {};
      let ok = true;
      for (let i = 0; i < segs.length && ok; i++) {
        const p = r.parts[i]!;
        if (p.startsWith(':')) {
          if (segs[i] === '') ok = false;
          else
            try {
              params[p.slice(1)] = decodeURIComponent(segs[i]!);
            } catch {
              ok = false;
            }
        } else ok = p === segs[i];
      }
      if (!ok) continue;
      if (r.method === method || (r.method === 'GET' && method === 'HEAD')) return { handler: r.handler, params };
      allowed.push(r.method);
    }
    if (allowed.length) throw new OkitError('METHOD_NOT_ALLOWED', `${method} is not allowed here; use ${[...new Set(allowed)].join(', ')}`, { allow: [...new Set(allowed)] });
    throw new OkitError('NOT_FOUND', `no route for ${method} ${pathname.length > 200 ? pathname.slice(0, 200) + '…' : pathname}`);
  }
}

/**
 * The request target as a path and a query, parsed as a path: `new URL('//x/healthz', base)`
 * would read `x` as a host and route what is left. Origin form (`/path?query`) and absolute
 * form (`http://host/path`, RFC 9112 3.2.2) are accepted; anything else is 400 BAD_REQUEST.
 */
export function parseTarget(raw: string | undefined): { pathname: string; query: URLSearchParams } {
  const t = raw ?? '';
  if (t.startsWith('/')) {
    const q = t.indexOf('?');
    return { pathname: q < 0 ? t : t.slice(0, q), query: new URLSearchParams(q < 0 ? '' : t.slice(q + 1)) };
  }
  if (/^https?:\/\/[^/?#]/i.test(t)) {
    let u: URL | undefined;
    try {
      u = new URL(t);
    } catch {
      u = undefined;
    }
    if (u) return parseTarget(u.pathname + u.search);
  }
  throw new OkitError('BAD_REQUEST', 'the request target must be a path (/...) or an absolute http URL');
}
