/** The page's time to first signal (route entered → first live signal rendered), as surface `ui`. */
import { API, call } from './api.js';

/** A first signal shown (`signal.rendered`), or given up on after the card's wait (`signal.timeout`). */
export function reportTtfs(e: { jobId: string; ms: number; kind?: string; phase?: string; cacheHit: boolean; type?: 'signal.rendered' | 'signal.timeout' }): void {
  const event = {
    surface: 'ui',
    event_type: e.type ?? 'signal.rendered',
    ttfs_ms: Math.min(Math.max(0, e.ms), 3_600_000),
    job_id: e.jobId,
    cache_hit: e.cacheHit,
    ...(e.kind ? { kind: e.kind, phase: e.phase } : {}),
  };
  call(`${API}/telemetry/ttfs`, { method: 'POST', body: { events: [event] }, quiet401: true }).catch(() => {
    /* telemetry off or refused: never the user's problem */
  });
  (window as unknown as { __okitTtfs?: number[] }).__okitTtfs ??= [];
  (window as unknown as { __okitTtfs: number[] }).__okitTtfs.push(e.ms);
}
