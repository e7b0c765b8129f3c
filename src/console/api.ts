/** The page's HTTP: same origin, the session cookie, the CSRF token on every state change. */
export const API = '/api/v1/orchestrator';
export const SESSION = '/api/v1/console/session';

export interface Session {
  tenant: string;
  scope: 'read' | 'admin' | string;
  csrf_token: string;
  expires_at: string;
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

let session: Session | null = null;
let onUnauthenticated: (why: string) => void = () => {};

export const currentSession = () => session;
export function setSession(s: Session | null): void {
  session = s;
}
export function whenUnauthenticated(fn: (why: string) => void): void {
  onUnauthenticated = fn;
}

export interface Reply<T> {
  status: number;
  body: T | null;
  etag: string | null;
}

export async function call<T>(path: string, o: { method?: string; body?: unknown; etag?: string | null; quiet401?: boolean } = {}): Promise<Reply<T>> {
  const method = o.method ?? 'GET';
  const headers: Record<string, string> = { Accept: 'application/json' };
  if (o.body !== undefined) headers['Content-Type'] = 'application/json';
  if (method !== 'GET' && session) headers['X-CSRF-Token'] = session.csrf_token;
  if (o.etag) headers['If-None-Match'] = o.etag;
  const res = await fetch(path, { method, headers, credentials: 'same-origin', cache: 'no-store', body: o.body === undefined ? undefined : JSON.stringify(o.body) });
  if (res.status === 304) return { status: 304, body: null, etag: o.etag ?? null };
  const text = await res.text();
  let body: unknown = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    body = null;
  }
  if (!res.ok) {
    const err = (body as { error?: { code?: string; message?: string } } | null)?.error;
    const e = new ApiError(res.status, err?.code ?? `HTTP_${res.status}`, err?.message ?? `${method} ${path}: HTTP ${res.status}`);
    if (res.status === 401 && !o.quiet401) {
      session = null;
      onUnauthenticated(e.code);
    }
    throw e;
  }
  return { status: res.status, body: body as T, etag: res.headers.get('ETag') };
}

export const get = <T>(path: string) => call<T>(path).then((r) => r.body as T);
export const post = <T>(path: string, body: unknown = {}) => call<T>(path, { method: 'POST', body }).then((r) => r.body as T);

/** Issue 14's `href`s name server paths (`/jobs/{id}`, `/runs/{id}`): the page follows them in its hash. */
export function pageHref(href: string): string {
  if (/^\/(jobs|runs)\/[^/?#]+$/.test(href)) return '#' + href;
  if (href.startsWith('#/')) return href;
  return '#/jobs';
}
