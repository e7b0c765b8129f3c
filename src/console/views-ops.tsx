/** Dashboard, throttles, dead letters, sources. */
import { useEffect, useState } from 'preact/hooks';
import { API, ApiError, get } from './api.js';
import { ActionButton } from './card.js';
import { Skeleton, when } from './ui.js';

function usePoll<T>(path: string, everyMs: number): { data: T | null; err: unknown; reload: () => void } {
  const [data, setData] = useState<T | null>(null);
  const [err, setErr] = useState<unknown>(null);
  const [n, setN] = useState(0);
  useEffect(() => {
    let stop = false;
    const load = () =>
      get<T>(path).then(
        (d) => {
          if (!stop) {
            setData(d);
            setErr(null);
          }
        },
        (e) => !stop && setErr(e),
      );
    void load();
    const t = setInterval(load, everyMs);
    return () => {
      stop = true;
      clearInterval(t);
    };
  }, [path, n]);
  return { data, err, reload: () => setN((x) => x + 1) };
}

function Err({ e }: { e: unknown }) {
  return e ? (
    <p class="error-text" role="alert">
      {e instanceof ApiError ? `${e.code}: ${e.message}` : String(e)}
    </p>
  ) : null;
}

interface Throttle {
  host: string;
  capacity: string;
  tokens: string;
  refill_per_sec: string;
  base_refill_per_sec: string;
  penalty_until: string | null;
  last_upstream_throttle: { at: string; status: number | null } | null;
}
interface Dash {
  queues: Array<{ type: string; states: Record<string, number> }>;
  paused: Array<{ type: string; paused: { actor?: string; reason?: string | null; at?: string } | null }>;
  throttles: Throttle[];
  dead_letters: Array<{ type: string; count: number }>;
  ttfs: Array<{ surface: string; events: number; p50_ms: number | null; p95_ms: number | null; p50_target_ms: number; p95_target_ms: number; hourly_p95: Array<{ hour: string; p95_ms: number | null }> }>;
}
const STATES = ['queued', 'throttled', 'running', 'succeeded', 'failed', 'dead_letter', 'canceled'];

function Fill({ t }: { t: Throttle }) {
  const cap = Number(t.capacity);
  const tok = Number(t.tokens);
  const pct = cap > 0 ? Math.max(0, Math.min(100, Math.round((tok / cap) * 100))) : 0;
  return (
    <div class="bar small" role="meter" aria-valuemin={0} aria-valuemax={cap} aria-valuenow={tok} aria-label={`${t.host} bucket`}>
      <div class="bar-fill" style={{ width: `${pct}%` }} />
      <span class="bar-text">
        {tok.toFixed(1)} / {cap} tokens
      </span>
    </div>
  );
}

function ThrottleTable({ rows }: { rows: Throttle[] }) {
  if (!rows.length) return <p>No throttled hosts.</p>;
  return (
    <div class="table-wrap">
      <table>
        <thead>
          <tr>
            <th scope="col">Host</th>
            <th scope="col">Bucket</th>
            <th scope="col">Refill /s</th>
            <th scope="col">Penalty</th>
          </tr>
        </thead>
        <tbody>
          {rows.map((t) => (
            <tr key={t.host}>
              <td>{t.host}</td>
              <td>
                <Fill t={t} />
              </td>
              <td>
                {t.refill_per_sec}
                {t.refill_per_sec !== t.base_refill_per_sec ? ` (base ${t.base_refill_per_sec})` : ''}
              </td>
              <td>{t.penalty_until ? `⚠ until ${when(t.penalty_until)}` : 'none'}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

/** p95 per hour against the SLO line: a tiny SVG, no chart library. */
function TtfsChart({ s }: { s: Dash['ttfs'][number] }) {
  const W = 240;
  const H = 60;
  const pts = s.hourly_p95.filter((p) => p.p95_ms !== null);
  const max = Math.max(s.p95_target_ms * 1.2, ...pts.map((p) => p.p95_ms!));
  const y = (v: number) => H - (v / max) * H;
  const x = (i: number) => (pts.length <= 1 ? W / 2 : (i / (pts.length - 1)) * W);
  return (
    <svg class="chart" viewBox={`0 0 ${W} ${H}`} role="img" aria-label={`${s.surface} hourly p95 against its ${s.p95_target_ms} ms target`}>
      <line class="slo" x1={0} x2={W} y1={y(s.p95_target_ms)} y2={y(s.p95_target_ms)} />
      {pts.length > 1 ? <polyline class="series" points={pts.map((p, i) => `${x(i)},${y(p.p95_ms!)}`).join(' ')} /> : null}
      {pts.map((p, i) => (
        <circle key={p.hour} class="point" cx={x(i)} cy={y(p.p95_ms!)} r={2.5} />
      ))}
    </svg>
  );
}

const ms = (v: number | null) => (v === null ? '—' : `${Math.round(v)} ms`);

export function Dashboard() {
  const { data, err } = usePoll<Dash>(`${API}/console/dashboard`, 5000);
  return (
    <>
      <h1>Dashboard</h1>
      <Err e={err} />
      {!data ? (
        <Skeleton lines={6} />
      ) : (
        <div class="grid">
          <section class="panel wide">
            <h2>Queue depth</h2>
            {data.queues.length ? (
              <div class="table-wrap">
                <table>
                  <thead>
                    <tr>
                      <th scope="col">Type</th>
                      {STATES.map((s) => (
                        <th scope="col" key={s}>
                          {s.replace('_', ' ')}
                        </th>
                      ))}
                    </tr>
                  </thead>
                  <tbody>
                    {data.queues.map((q) => (
                      <tr key={q.type}>
                        <th scope="row">
                          <a href={`#/jobs?type=${encodeURIComponent(q.type)}`}>{q.type}</a>
                        </th>
                        {STATES.map((s) => (
                          <td key={s} class="num">
                            {q.states[s] ?? 0}
                          </td>
                        ))}
                      </tr>
                    ))}
                  </tbody>
                </table>
              </div>
            ) : (
              <p>No jobs yet.</p>
            )}
          </section>
          <section class="panel">
            <h2>Time to first signal (24 h)</h2>
            <div class="ttfs">
              {data.ttfs.map((s) => {
                const over50 = s.p50_ms !== null && s.p50_ms > s.p50_target_ms;
                const over95 = s.p95_ms !== null && s.p95_ms > s.p95_target_ms;
                const mark = (v: number | null, over: boolean) => (v === null ? '(no data) vs' : over ? '✕ over' : '✓ within');
                return (
                  <div key={s.surface} class={`ttfs-surface${over50 || over95 ? ' breach' : ''}`}>
                    <h3>{s.surface}</h3>
                    <p>
                      p50 {ms(s.p50_ms)} {mark(s.p50_ms, over50)} {ms(s.p50_target_ms)} · p95 {ms(s.p95_ms)} {mark(s.p95_ms, over95)} {ms(s.p95_target_ms)} · {s.events} events
                    </p>
                    <TtfsChart s={s} />
                  </div>
                );
              })}
            </div>
          </section>
          <section class="panel">
            <h2>Throttled hosts</h2>
            <ThrottleTable rows={data.throttles} />
          </section>
          <section class="panel">
            <h2>Paused types</h2>
            {data.paused.length ? (
              <ul>
                {data.paused.map((p) => (
                  <li key={p.type}>
                    ‖ {p.type} {p.paused?.reason ? `— ${p.paused.reason}` : ''} <ActionButton path={`${API}/queues/${encodeURIComponent(p.type)}/resume`} label={`Resume ${p.type}`} />
                  </li>
                ))}
              </ul>
            ) : (
              <p>None paused.</p>
            )}
          </section>
          <section class="panel">
            <h2>Dead letters</h2>
            {data.dead_letters.length ? (
              <ul>
                {data.dead_letters.map((d) => (
                  <li key={d.type}>
                    <a href={`#/jobs?state=dead_letter&type=${encodeURIComponent(d.type)}`}>
                      {d.type}: {d.count}
                    </a>
                  </li>
                ))}
              </ul>
            ) : (
              <p>No dead letters.</p>
            )}
          </section>
        </div>
      )}
    </>
  );
}

export function Throttles() {
  const { data, err } = usePoll<{ throttles: Throttle[] }>(`${API}/throttles`, 3000);
  return (
    <>
      <h1>Throttles</h1>
      <Err e={err} />
      {data ? <ThrottleTable rows={data.throttles} /> : <Skeleton />}
    </>
  );
}

export function DeadLetters() {
  const { data, err, reload } = usePoll<{ jobs: Array<{ id: string; type: string; updated_at: string; last_error: { code: string; message: string } | null }> }>(`${API}/jobs?state=dead_letter&limit=200`, 5000);
  const types = [...new Set((data?.jobs ?? []).map((j) => j.type))];
  return (
    <>
      <h1>Dead letters</h1>
      <Err e={err} />
      {!data ? (
        <Skeleton />
      ) : !data.jobs.length ? (
        <p>No dead letters.</p>
      ) : (
        <>
          <p>
            {types.map((t) => (
              <ActionButton key={t} path={`${API}/dead-letters/retry`} body={{ type: t, reason: 'retried from the console' }} label={`Retry ${t}`} onDone={reload} />
            ))}
          </p>
          <div class="table-wrap">
            <table>
              <thead>
                <tr>
                  <th scope="col">Job</th>
                  <th scope="col">Type</th>
                  <th scope="col">Error</th>
                  <th scope="col">When</th>
                </tr>
              </thead>
              <tbody>
                {data.jobs.map((j) => (
                  <tr key={j.id}>
                    <td>
                      <a href={`#/jobs/${j.id}`}>{j.id.slice(0, 8)}</a>
                    </td>
                    <td>{j.type}</td>
                    <td>{j.last_error ? `${j.last_error.code}: ${j.last_error.message}` : ''}</td>
                    <td class="when">{when(j.updated_at)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        </>
      )}
    </>
  );
}

export function Sources() {
  const { data, err } = usePoll<{ sources: Array<{ id: string; name: string; host: string; created_at?: string }> }>(`${API}/sources`, 10000);
  return (
    <>
      <h1>Sources</h1>
      <Err e={err} />
      {!data ? (
        <Skeleton />
      ) : !data.sources.length ? (
        <p>No sources.</p>
      ) : (
        <div class="table-wrap">
          <table>
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Host</th>
                <th scope="col">Jobs</th>
              </tr>
            </thead>
            <tbody>
              {data.sources.map((s) => (
                <tr key={s.id}>
                  <td>{s.name}</td>
                  <td>{s.host}</td>
                  <td>
                    <a href={`#/jobs?source_id=${s.id}`}>jobs</a>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </>
  );
}
