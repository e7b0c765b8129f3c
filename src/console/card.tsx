/** The FirstSignalCard: status, phase progress, summary, ETA, outcome, next actions, diagnostics. */
import { useEffect, useRef, useState } from 'preact/hooks';
import { API, ApiError, currentSession, pageHref, post } from './api.js';
import { next, onSignal, TERMINAL_KINDS, type LoadState } from './machine.js';
import { hub, type Update } from './signals.js';
import { reportTtfs } from './telemetry.js';
import { Eta, KINDS, PhaseProgress, Skeleton, StatusIndicator, text } from './ui.js';

/** An action the page can do itself, for a next action's `okit …` command. */
function apiFor(command: string | undefined): { path: string; label: string } | null {
  if (!command) return null;
  let m = /^okit queue resume (\S+)$/.exec(command);
  if (m) return { path: `${API}/queues/${encodeURIComponent(m[1]!)}/resume`, label: `Resume ${m[1]}` };
  m = /^okit jobs? (cancel|retry) ([0-9a-f-]{36})$/.exec(command);
  if (m) return { path: `${API}/jobs/${m[2]}/${m[1]}`, label: m[1] === 'cancel' ? 'Cancel' : 'Retry' };
  return null;
}

export function ActionButton({ path, label, onDone, body = {} }: { path: string; label: string; onDone?: () => void; body?: unknown }) {
  const admin = currentSession()?.scope === 'admin';
  const [busy, setBusy] = useState(false);
  const [msg, setMsg] = useState('');
  return (
    <span class="action">
      <button
        type="button"
        disabled={!admin || busy}
        title={admin ? undefined : 'Needs an admin session'}
        onClick={async () => {
          setBusy(true);
          setMsg('');
          try {
            await post(path, body);
            setMsg(`${label}: done`);
            onDone?.();
          } catch (e) {
            setMsg(`${label} refused: ${e instanceof ApiError ? `${e.code}: ${e.message}` : String(e)}`);
          } finally {
            setBusy(false);
          }
        }}
      >
        {label}
      </button>
      {!admin ? <span class="hint"> (admin only)</span> : null}
      {msg ? (
        <span class="action-msg" role="status">
          {' '}
          {msg}
        </span>
      ) : null}
    </span>
  );
}

export interface CardProps {
  jobId: string;
  /** performance.now() when the route was entered: the start of this view's TTFS. */
  routeAt: number;
  onChange?: (u: Update) => void;
}

export function FirstSignalCard({ jobId, routeAt, onChange }: CardProps) {
  const [state, setState] = useState<LoadState>('idle');
  const [u, setU] = useState<Update | null>(null);
  const [announce, setAnnounce] = useState('');
  const reported = useRef(false);
  const lastKey = useRef('');
  useEffect(() => {
    reported.current = false;
    lastKey.current = '';
    setU(null);
    setState((s) => next(s, { type: 'load' }));
    // No answer at all within 10 s (neither stream nor poll): show the error state and retry.
    const fails = setTimeout(() => {
      setState((s) => (s === 'loading' ? next(s, { type: 'fail' }) : s));
      if (!reported.current) {
        // The user waited this long and saw nothing: a timeout counts against the SLO too.
        reported.current = true;
        reportTtfs({ jobId, ms: performance.now() - routeAt, cacheHit: false, type: 'signal.timeout' });
      }
    }, 10_000);
    const off = hub.subscribe(jobId, (up) => {
      clearTimeout(fails);
      setU(up);
      onChange?.(up);
      if (up.absent || !up.signal) {
        setState((s) => next(s === 'idle' ? 'loading' : s, { type: 'fail' }));
        return;
      }
      const sig = up.signal;
      const terminal = TERMINAL_KINDS.has(sig.kind);
      setState((s) => (s === 'error' || (s === 'done' && !terminal) ? onSignal(next(s, { type: 'load' }), terminal) : onSignal(s, terminal)));
      const key = `${sig.kind}|${sig.phase}|${sig.summary}`;
      if (key !== lastKey.current) {
        lastKey.current = key;
        setAnnounce(`${KINDS[sig.kind]?.label ?? sig.kind}${sig.phase !== 'unknown' ? `, phase ${sig.phase}` : ''}: ${sig.summary}`);
      }
      if (!reported.current && up.via !== 'cache') {
        reported.current = true;
        // Rendered on the next frame: measure to then.
        requestAnimationFrame(() => reportTtfs({ jobId, ms: performance.now() - routeAt, kind: sig.kind, phase: sig.phase, cacheHit: false }));
      }
    });
    return () => {
      clearTimeout(fails);
      off();
    };
  }, [jobId]);

  const sig = u?.signal ?? null;
  return (
    <section class={`card card-${state}`} aria-busy={state === 'loading'} data-state={state} data-kind={sig?.kind ?? ''}>
      <div class="sr-only" role="status" aria-live="polite" aria-atomic="true" data-testid="live">
        {announce}
      </div>
      {u?.absent ? (
        <p class="error-text">This job does not exist (or is not yours).</p>
      ) : !sig ? (
        <>
          <Skeleton lines={4} />
          {state === 'error' ? <p class="error-text">No signal yet: the server is not answering. Retrying…</p> : null}
        </>
      ) : (
        <div class={`card-body${u?.via === 'cache' ? ' card-cached' : ''}`}>
          <header class="card-head">
            <StatusIndicator kind={sig.kind} />
            <Eta seconds={sig.eta_seconds} since={u!.at} kind={sig.kind} />
            {u?.via === 'cache' ? <span class="badge">cached</span> : null}
          </header>
          <p class="summary" data-testid="summary">
            {sig.summary}
          </p>
          {sig.kind === 'phase' || sig.kind === 'started' || sig.kind === 'succeeded' ? <PhaseProgress signal={sig} /> : null}
          {sig.last_known_outcome ? (
            <div class="outcome">
              <h3>Last known outcome</h3>
              <dl>
                {Object.entries(sig.last_known_outcome).map(([k, v]) => (
                  <div key={k} class={k === 'likely_cause' ? 'likely-cause' : undefined}>
                    <dt>{k === 'likely_cause' ? 'Likely cause' : k.replaceAll('_', ' ')}</dt>
                    <dd>{text(v)}</dd>
                  </div>
                ))}
              </dl>
            </div>
          ) : null}
          {sig.next_actions?.length ? (
            <div class="next-actions">
              <h3>Next actions</h3>
              <ul>
                {sig.next_actions.map((a, i) => {
                  const act = apiFor(a.command);
                  return (
                    <li key={i}>
                      {a.href ? <a href={pageHref(a.href)}>{a.label}</a> : <span>{a.label}</span>}
                      {act ? <ActionButton path={act.path} label={act.label} /> : null}
                      {a.command ? <code class="command">{a.command}</code> : null}
                    </li>
                  );
                })}
              </ul>
            </div>
          ) : null}
          <details class="diagnostics">
            <summary>Diagnostics</summary>
            <dl>
              {Object.entries(sig.diagnostics).map(([k, v]) => (
                <div key={k}>
                  <dt>{k}</dt>
                  <dd>{v === null ? '—' : text(v)}</dd>
                </div>
              ))}
            </dl>
          </details>
        </div>
      )}
    </section>
  );
}
