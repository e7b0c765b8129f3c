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
  parts: string[];
  handler: Handler;
}

export class Router {
  private readonly routes: Route[] = [];

  add(method: string, pattern: string, handler: Handler): this {
    this.routes.push({ method, parts: pattern.split('/').filter(Boolean), handler });
    return this;
  }

  /** The handler for a request, or a 404/405 OkitError. */
  match(method: string, pathname: string): { handler: Handler; params: Record<string, string> } {
    const segs = pathname.split('/').filter(Boolean);
    const allowed: string[] = [];
    for (const r of this.routes) {
      if (r.parts.length !== segs.length) continue;
      const params: Record<string, string> = {};
      let ok = true;
      for (let i = 0; i < segs.length && ok; i++) {
        const p = r.parts[i]!;
        if (p.startsWith(':')) {
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
    throw new OkitError('NOT_FOUND', `no route for ${method} ${pathname}`);
  }
}
