/**
 * Every job signal the page shows, through ONE multiplexed SSE connection
 * (GET …/stream/jobs?ids=…), with a polling fallback (…/jobs/{id}/first-signal, If-None-Match)
 * when the stream fails or sends nothing within 300 ms, and a cached snapshot (sessionStorage)
 * shown before either answers. NOTIFY is a hint and the stream a convenience: every reconnect
 * starts with the current signal of every job (the server sends them on connect).
 */
import { API, ApiError, call } from './api.js';

export interface Signal {
  kind: string;
  phase: string;
  summary: string;
  eta_seconds: number | null;
  last_known_outcome: Record<string, unknown> | null;
  next_actions: Array<{ label: string; command?: string; href?: string }> | null;
  diagnostics: Record<string, unknown>;
}
export interface Update {
  job_id: string;
  etag: string | null;
  signal: Signal | null;
  /** absent: the job does not exist for this tenant. */
  absent?: boolean;
  /** Where it came from: the page's cache, the stream or a poll. */
  via: 'cache' | 'stream' | 'poll';
  /** performance.now() when it arrived. */
  at: number;
}
type Listener = (u: Update) => void;

export const FIRST_EVENT_MS = 300;
export const POLL_MS = 2000;
const POLL_CONCURRENCY = 4;

const cacheKey = (id: string) => `okit.signal.${id}`;

function readCache(id: string): Update | null {
  try {
    const raw = sessionStorage.getItem(cacheKey(id));
    if (!raw) return null;
    const c = JSON.parse(raw) as { etag: string; signal: Signal };
    return { job_id: id, etag: c.etag, signal: c.signal, via: 'cache', at: performance.now() };
  } catch {
    return null;
  }
}

export type StreamMode = 'idle' | 'connecting' | 'live' | 'polling';

export class SignalHub {
  private readonly subs = new Map<string, Set<Listener>>();
  private readonly latest = new Map<string, Update>();
  private es: EventSource | null = null;
  private openTimer: ReturnType<typeof setTimeout> | null = null;
  private firstTimer: ReturnType<typeof setTimeout> | null = null;
  private pollTimer: ReturnType<typeof setTimeout> | null = null;
  private retryMs = 500;
  private streamIds = '';
  mode: StreamMode = 'idle';
  onMode: (m: StreamMode) => void = () => {};
  /** How many EventSources this page has opened (a test and the status line read it). */
  opened = 0;

  subscribe(id: string, fn: Listener): () => void {
    let set = this.subs.get(id);
    if (!set) this.subs.set(id, (set = new Set()));
    set.add(fn);
    let known = this.latest.get(id);
    if (!known && (known = readCache(id) ?? undefined)) this.latest.set(id, known);
    if (known) queueMicrotask(() => set!.has(fn) && fn(known));
    this.schedule();
    return () => {
      set!.delete(fn);
      if (!set!.size) this.subs.delete(id);
      this.schedule();
    };
  }

  /** Latest known signal of a job (stream, poll or cache). */
  get(id: string): Update | undefined {
    return this.latest.get(id);
  }

  private setMode(m: StreamMode): void {
    if (this.mode !== m) {
      this.mode = m;
      this.onMode(m);
    }
  }

  private deliver(u: Update): void {
    const prev = this.latest.get(u.job_id);
    if (prev && prev.via !== 'cache' && prev.etag === u.etag && !u.absent) return;
    this.latest.set(u.job_id, u);
    if (u.signal && u.etag)
      try {
        sessionStorage.setItem(cacheKey(u.job_id), JSON.stringify({ etag: u.etag, signal: u.signal }));
      } catch {
        /* storage full or off: the cache is only a head start */
      }
    for (const fn of this.subs.get(u.job_id) ?? []) fn(u);
  }

  /** Re-open the stream once the set of ids settles (a list subscribes 200 rows in one tick). */
  private schedule(): void {
    if (this.openTimer) clearTimeout(this.openTimer);
    this.openTimer = setTimeout(() => {
      this.openTimer = null;
      const ids = [...this.subs.keys()].sort().join(',');
      if (ids !== this.streamIds || !this.es) this.open(ids);
    }, 10);
  }

  private open(ids: string): void {
    this.close();
    this.streamIds = ids;
    if (!ids) {
      this.stopPolling();
      return this.setMode('idle');
    }
    if (!this.polling) this.setMode('connecting');
    const es = new EventSource(`${API}/stream/jobs?ids=${ids}`);
    this.es = es;
    this.opened++;
    let first = false;
    this.firstTimer = setTimeout(() => {
      if (!first) this.startPolling();
    }, FIRST_EVENT_MS);
    const got = () => {
      if (!first) {
        first = true;
        this.retryMs = 500;
        this.stopPolling();
        this.setMode('live');
      }
    };
    es.addEventListener('signal', (ev) => {
      got();
      const d = JSON.parse((ev as MessageEvent<string>).data) as { job_id: string; etag: string; signal: Signal };
      this.deliver({ job_id: d.job_id, etag: d.etag, signal: d.signal, via: 'stream', at: performance.now() });
    });
    es.addEventListener('absent', (ev) => {
      got();
      const d = JSON.parse((ev as MessageEvent<string>).data) as { job_id: string };
      this.deliver({ job_id: d.job_id, etag: null, signal: null, absent: true, via: 'stream', at: performance.now() });
    });
    es.onopen = () => {
      // A stream that reopened after a drop is live again only once it speaks; meanwhile poll.
      first = false;
      if (this.firstTimer) clearTimeout(this.firstTimer);
      this.firstTimer = setTimeout(() => {
        if (!first) this.startPolling();
      }, FIRST_EVENT_MS);
    };
    es.onerror = () => {
      if (this.es !== es) return;
      this.startPolling();
      if (es.readyState === EventSource.CLOSED) {
        // Refused (401, 503, …): the browser will not retry by itself. Reopen with backoff.
        this.es = null;
        const wait = this.retryMs;
        this.retryMs = Math.min(this.retryMs * 2, 10_000);
        setTimeout(() => {
          if (!this.es && this.subs.size) this.open([...this.subs.keys()].sort().join(','));
        }, wait);
      }
    };
  }

  private close(): void {
    this.es?.close();
    this.es = null;
    if (this.firstTimer) clearTimeout(this.firstTimer);
    this.firstTimer = null;
  }

  private polling = false;

  private startPolling(): void {
    this.setMode('polling');
    if (this.polling) return;
    this.polling = true;
    const tick = async () => {
      const ids = [...this.subs.keys()];
      let i = 0;
      await Promise.all(
        Array.from({ length: Math.min(POLL_CONCURRENCY, ids.length) }, async () => {
          while (i < ids.length && this.polling) await this.pollOne(ids[i++]!);
        }),
      );
      this.pollTimer = this.polling ? setTimeout(tick, POLL_MS) : null;
    };
    this.pollTimer = setTimeout(tick, 0);
  }

  private stopPolling(): void {
    this.polling = false;
    if (this.pollTimer) clearTimeout(this.pollTimer);
    this.pollTimer = null;
  }

  private async pollOne(id: string): Promise<void> {
    const prev = this.latest.get(id);
    try {
      // The body is the signal itself; its ETag is the header's (the same as the stream's).
      const r = await call<Signal>(`${API}/jobs/${encodeURIComponent(id)}/first-signal`, { etag: prev?.etag });
      if (r.status === 200 && r.body) this.deliver({ job_id: id, etag: r.etag, signal: r.body, via: 'poll', at: performance.now() });
      // 304 for the cached snapshot: the server confirms it is current, so it is live now.
      else if (r.status === 304 && prev?.via === 'cache') this.deliver({ ...prev, via: 'poll', at: performance.now() });
    } catch (e) {
      if (e instanceof ApiError && e.status === 404) this.deliver({ job_id: id, etag: null, signal: null, absent: true, via: 'poll', at: performance.now() });
      // Anything else (server down): keep the last known signal and try again next tick.
    }
  }

  stop(): void {
    this.close();
    this.stopPolling();
    this.subs.clear();
    this.streamIds = '';
    this.setMode('idle');
  }
}

export const hub = new SignalHub();
