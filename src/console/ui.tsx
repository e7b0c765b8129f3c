/** Small shared pieces: kind → icon + colour + text, phase progress, ETA countdown, time. */
import { useEffect, useState } from 'preact/hooks';
import type { Signal } from './signals.js';

/** Each kind has an icon, a word and a colour: colour is never the only cue. */
export const KINDS: Record<string, { icon: string; label: string }> = {
  queued: { icon: '◷', label: 'Queued' },
  started: { icon: '▶', label: 'Started' },
  phase: { icon: '◔', label: 'In progress' },
  blocked: { icon: '‖', label: 'Blocked' },
  failed: { icon: '✕', label: 'Failed' },
  succeeded: { icon: '✓', label: 'Succeeded' },
  canceled: { icon: '⊘', label: 'Canceled' },
  unavailable: { icon: '?', label: 'Unavailable' },
};
export const PHASES = ['resolve', 'fetch', 'restore', 'analyze', 'policy', 'report'];

export function StatusIndicator({ kind }: { kind: string }) {
  const k = KINDS[kind] ?? { icon: '•', label: kind };
  return (
    <span class={`status status-${KINDS[kind] ? kind : 'unknown'}`} data-kind={kind}>
      <span class="status-icon" aria-hidden="true">
        {k.icon}
      </span>
      <span class="status-text">{k.label}</span>
    </span>
  );
}

const n = (x: unknown): number | null => (typeof x === 'number' && Number.isFinite(x) ? x : null);

export function PhaseProgress({ signal }: { signal: Signal }) {
  const done = n(signal.diagnostics.items_done);
  const total = n(signal.diagnostics.items_total);
  const at = PHASES.indexOf(signal.phase);
  const pct = done !== null && total ? Math.max(0, Math.min(100, Math.round((done / total) * 100))) : signal.kind === 'succeeded' ? 100 : null;
  return (
    <div class="phase-progress">
      <ol class="phases" aria-label="Phases">
        {PHASES.map((p, i) => (
          <li key={p} class={i < at ? 'phase-done' : i === at ? 'phase-current' : 'phase-todo'} aria-current={i === at ? 'step' : undefined}>
            {i < at ? '✓ ' : i === at ? '● ' : ''}
            {p}
          </li>
        ))}
      </ol>
      {pct !== null ? (
        <div class="bar" role="progressbar" aria-valuemin={0} aria-valuemax={100} aria-valuenow={pct} aria-label="Progress">
          <div class="bar-fill" style={{ width: `${pct}%` }} />
          <span class="bar-text">
            {pct}%{done !== null && total ? ` (${done} of ${total})` : ''}
          </span>
        </div>
      ) : null}
    </div>
  );
}

export function fmtSeconds(s: number): string {
  s = Math.max(0, Math.round(s));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
  return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
}

/** The ETA as of when the signal arrived, counted down once a second. */
const FINISHED = new Set(['succeeded', 'failed', 'canceled']);

export function Eta({ seconds, since, kind }: { seconds: number | null; since: number; kind?: string }) {
  const [now, setNow] = useState(performance.now());
  const finished = kind !== undefined && FINISHED.has(kind);
  useEffect(() => {
    if (seconds === null || finished) return;
    const t = setInterval(() => setNow(performance.now()), 1000);
    return () => clearInterval(t);
  }, [seconds, since]);
  if (finished) return <span class="eta eta-none">finished</span>;
  if (seconds === null) return <span class="eta eta-none">no ETA</span>;
  const left = seconds - (now - since) / 1000;
  return <span class="eta">{left > 0 ? `ETA ${fmtSeconds(left)}` : 'ETA any moment'}</span>;
}

export function Skeleton({ lines = 3 }: { lines?: number }) {
  return (
    <div class="skeleton" aria-hidden="true">
      {Array.from({ length: lines }, (_, i) => (
        <div key={i} class="skeleton-line" />
      ))}
    </div>
  );
}

export const shortId = (id: string) => id.slice(0, 8);
export const when = (iso: string | null | undefined) => (iso ? iso.replace('T', ' ').replace(/\.\d+/, '').replace('Z', ' UTC') : '—');
export const text = (v: unknown) => (typeof v === 'string' ? v : JSON.stringify(v));
