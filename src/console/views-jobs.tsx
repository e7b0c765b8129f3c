/** Jobs list, job page (card + history), run page. */
import { useEffect, useRef, useState } from 'preact/hooks';
import { API, ApiError, get } from './api.js';
import type { Route } from './app.js';
import { ActionButton, FirstSignalCard } from './card.js';
import { hub, type Signal, type Update } from './signals.js';
import { Eta, Skeleton, StatusIndicator, shortId, text, when } from './ui.js';

interface ListItem {
  id: string;
  type: string;
  state: string;
  attempt: number;
  max_attempts: number;
  run_id: string | null;
  created_at: string;
  updated_at: string;
  signal: { kind: string; phase: string; summary: string; eta_seconds: number | null } | null;
  last_error: { code: string; message: string } | null;
}
interface JobList {
  jobs: ListItem[];
  next_cursor: string | null;
  totals: Record<string, number>;
}

const STATES = ['', 'queued', 'throttled', 'running', 'succeeded', 'failed', 'dead_letter', 'canceled'];
const KIND_OPTS = ['', 'queued', 'started', 'phase', 'blocked', 'failed', 'succeeded', 'canceled', 'unavailable'];
const FILTERS = ['state', 'kind', 'type', 'run_id', 'source_id', 'error_code', 'created_after', 'created_before', 'sort', 'order', 'limit'];

function ErrorText({ e }: { e: unknown }) {
  return (
    <p class="error-text" role="alert">
      {e instanceof ApiError ? `${e.code}: ${e.message}` : String(e)}
    </p>
  );
}

/** A row that follows its job's signal through the page's one stream. */
function JobRow({ j }: { j: ListItem }) {
  const [u, setU] = useState<Update | null>(null);
  const [listedAt] = useState(() => performance.now());
  useEffect(() => hub.subscribe(j.id, setU), [j.id]);
  const s: Pick<Signal, 'kind' | 'summary' | 'eta_seconds'> | null = u?.signal ?? j.signal;
  return (
    <tr data-job={j.id} data-kind={s?.kind ?? ''}>
      <td>{s ? <StatusIndicator kind={s.kind} /> : '—'}</td>
      <td>
        <a href={`#/jobs/${j.id}`}>{shortId(j.id)}</a>
      </td>
      <td>{j.type}</td>
      <td class="row-summary">{s?.summary ?? (j.last_error ? `${j.last_error.code}: ${j.last_error.message}` : '')}</td>
      <td>{s ? <Eta seconds={s.eta_seconds} since={u?.at ?? listedAt} kind={s.kind} /> : null}</td>
      <td class="when">{when(j.updated_at)}</td>
    </tr>
  );
}

export function JobTable({ jobs }: { jobs: ListItem[] }) {
  return (
    <div class="table-wrap">
      <table class="jobs">
        <thead>
          <tr>
            <th scope="col">Status</th>
            <th scope="col">Job</th>
            <th scope="col">Type</th>
            <th scope="col">Summary</th>
            <th scope="col">ETA</th>
            <th scope="col">Updated</th>
          </tr>
        </thead>
        <tbody>
          {jobs.map((j) => (
            <JobRow key={j.id} j={j} />
          ))}
        </tbody>
      </table>
    </div>
  );
}

export function JobsList({ route }: { route: Route }) {
  const [list, setList] = useState<JobList | null>(null);
  const [more, setMore] = useState<ListItem[]>([]);
  const paged = useRef(false);
  paged.current = more.length > 0;
  const [err, setErr] = useState<unknown>(null);
  const q = new URLSearchParams();
  for (const k of FILTERS) {
    const v = route.query.get(k);
    if (v) q.set(k, v);
  }
  if (!q.has('limit')) q.set('limit', '200');
  const qs = q.toString();
  useEffect(() => {
    setList(null);
    setMore([]);
    setErr(null);
    get<JobList>(`${API}/jobs?${qs}`).then(setList, setErr);
    // Rows follow their jobs live; new jobs join the first page every 10 s (the stream carries changes, not arrivals).
    const t = setInterval(() => {
      if (document.visibilityState === 'visible' && !paged.current) get<JobList>(`${API}/jobs?${qs}`).then((l) => setList((cur) => (cur && cur.jobs.map((j) => j.id).join() === l.jobs.map((j) => j.id).join() ? cur : l)), () => {});
    }, 10_000);
    return () => clearInterval(t);
  }, [qs]);
  const submit = (e: Event) => {
    e.preventDefault();
    const f = new FormData(e.target as HTMLFormElement);
    const p = new URLSearchParams();
    for (const k of FILTERS) {
      const v = String(f.get(k) ?? '').trim();
      if (v) p.set(k, v);
    }
    location.hash = `#/jobs${p.size ? `?${p}` : ''}`;
  };
  return (
    <>
      <h1>Jobs</h1>
      <form class="filters" onSubmit={submit} key={qs}>
        <label>
          State
          <select name="state" value={route.query.get('state') ?? ''}>
            {STATES.map((s) => (
              <option key={s} value={s}>
                {s || 'any'}
              </option>
            ))}
          </select>
        </label>
        <label>
          Kind
          <select name="kind" value={route.query.get('kind') ?? ''}>
            {KIND_OPTS.map((s) => (
              <option key={s} value={s}>
                {s || 'any'}
              </option>
            ))}
          </select>
        </label>
        {(['type', 'run_id', 'source_id', 'error_code', 'created_after', 'created_before'] as const).map((k) => (
          <label key={k}>
            {k.replaceAll('_', ' ')}
            <input name={k} value={route.query.get(k) ?? ''} size={12} />
          </label>
        ))}
        <label>
          Order
          <select name="order" value={route.query.get('order') ?? ''}>
            <option value="">newest first</option>
            <option value="asc">oldest first</option>
          </select>
        </label>
        <button type="submit">Filter</button>
      </form>
      {err ? <ErrorText e={err} /> : null}
      {!list && !err ? <Skeleton lines={6} /> : null}
      {list ? (
        <>
          <p class="totals">
            {Object.entries(list.totals)
              .filter(([, n]) => n > 0)
              .map(([s, n]) => `${s}: ${n}`)
              .join(' · ') || 'No jobs.'}
          </p>
          <JobTable jobs={[...list.jobs, ...more]} />
          {list.next_cursor ? (
            <button
              type="button"
              onClick={async () => {
                const p = new URLSearchParams(qs);
                p.set('cursor', list.next_cursor!);
                const page = await get<JobList>(`${API}/jobs?${p}`);
                setMore((m) => [...m, ...page.jobs]);
                setList({ ...list, next_cursor: page.next_cursor });
              }}
            >
              More
            </button>
          ) : null}
        </>
      ) : null}
    </>
  );
}

interface HistoryRow {
  n: number;
  at: string;
  event: string;
  from_state: string | null;
  to_state: string;
  data: Record<string, unknown>;
}
interface Job {
  id: string;
  type: string;
  state: string;
  payload: unknown;
  attempt: number;
  max_attempts: number;
  run_id: string | null;
  created_at: string;
}

const LIVE_STATES = new Set(['queued', 'throttled', 'running']);
const RETRYABLE = new Set(['failed', 'dead_letter', 'canceled']);

export function JobPage({ id, route }: { id: string; route: Route }) {
  const [job, setJob] = useState<Job | null>(null);
  const [history, setHistory] = useState<HistoryRow[] | null>(null);
  const [err, setErr] = useState<unknown>(null);
  const [etag, setEtag] = useState<string | null>(null);
  useEffect(() => {
    get<{ job: Job }>(`${API}/jobs/${encodeURIComponent(id)}`).then((r) => setJob(r.job), setErr);
  }, [id, etag]);
  useEffect(() => {
    get<{ history: HistoryRow[] }>(`${API}/jobs/${encodeURIComponent(id)}/history`).then((r) => setHistory(r.history), () => {});
  }, [id, etag]);
  return (
    <>
      <h1>
        Job <span class="mono">{id}</span>
      </h1>
      {job?.run_id ? (
        <p>
          Run <a href={`#/runs/${job.run_id}`}>{shortId(job.run_id)}</a>
        </p>
      ) : null}
      <FirstSignalCard jobId={id} routeAt={route.at} onChange={(u) => setEtag(u.etag)} />
      {err ? <ErrorText e={err} /> : null}
      {job ? (
        <section class="job-facts">
          <div class="actions" role="group" aria-label="Job actions">
            {LIVE_STATES.has(job.state) ? <ActionButton path={`${API}/jobs/${id}/cancel`} label="Cancel job" body={{ reason: 'canceled from the console' }} /> : null}
            {RETRYABLE.has(job.state) ? <ActionButton path={`${API}/jobs/${id}/retry`} label="Retry job" body={{ reason: 'retried from the console' }} /> : null}
          </div>
          <dl class="facts">
            <div>
              <dt>type</dt>
              <dd>{job.type}</dd>
            </div>
            <div>
              <dt>state</dt>
              <dd data-testid="job-state">{job.state}</dd>
            </div>
            <div>
              <dt>attempt</dt>
              <dd>
                {job.attempt} of {job.max_attempts}
              </dd>
            </div>
            <div>
              <dt>created</dt>
              <dd>{when(job.created_at)}</dd>
            </div>
          </dl>
          <details>
            <summary>Payload</summary>
            <pre class="payload" data-testid="payload">
              {JSON.stringify(job.payload, null, 2)}
            </pre>
          </details>
        </section>
      ) : null}
      <section class="history">
        <h2>History</h2>
        {!history ? (
          <Skeleton lines={3} />
        ) : (
          <ol class="timeline">
            {history.map((h) => (
              <li key={h.n}>
                <span class="when">{when(h.at)}</span> <strong>{h.event}</strong>{' '}
                <span class="transition">
                  {h.from_state ?? '∅'} → {h.to_state}
                </span>
                {Object.keys(h.data).length ? <code class="data">{text(h.data)}</code> : null}
              </li>
            ))}
          </ol>
        )}
      </section>
    </>
  );
}

interface RunStatus {
  run: { id: string; created_at: string };
  counts: { by_state: Record<string, number>; by_kind: Record<string, number> };
  items: { done: number; total: number };
  signal: { kind: string; summary: string; eta_seconds: number | null; worst_outcome: { state: string; job_id: string; error_code: string | null } | null };
  etag: string;
}

export function RunPage({ id }: { id: string; route: Route }) {
  const [st, setSt] = useState<RunStatus | null>(null);
  const [jobs, setJobs] = useState<ListItem[] | null>(null);
  const [err, setErr] = useState<unknown>(null);
  const [at, setAt] = useState(performance.now());
  useEffect(() => {
    let stop = false;
    const load = () =>
      get<RunStatus>(`${API}/runs/${encodeURIComponent(id)}`).then((s) => {
        if (stop) return;
        setSt(s);
        setAt(performance.now());
      }, setErr);
    void load();
    get<JobList>(`${API}/runs/${encodeURIComponent(id)}/jobs?limit=200`).then((l) => setJobs(l.jobs), setErr);
    const t = setInterval(load, 3000);
    return () => {
      stop = true;
      clearInterval(t);
    };
  }, [id]);
  const pct = st && st.items.total ? Math.round((st.items.done / st.items.total) * 100) : 0;
  return (
    <>
      <h1>
        Run <span class="mono">{id}</span>
      </h1>
      {err ? <ErrorText e={err} /> : null}
      {!st ? (
        <Skeleton lines={3} />
      ) : (
        <section class="card">
          <header class="card-head">
            <StatusIndicator kind={st.signal.kind} />
            <Eta seconds={st.signal.eta_seconds} since={at} kind={st.signal.kind} />
          </header>
          <p class="summary">{st.signal.summary}</p>
          <div class="bar" role="progressbar" aria-valuemin={0} aria-valuemax={100} aria-valuenow={pct} aria-label="Jobs done">
            <div class="bar-fill" style={{ width: `${pct}%` }} />
            <span class="bar-text">
              {st.items.done} of {st.items.total} done
            </span>
          </div>
          {st.signal.worst_outcome ? (
            <p>
              Worst outcome: {st.signal.worst_outcome.state} {st.signal.worst_outcome.error_code ?? ''} in{' '}
              <a href={`#/jobs/${st.signal.worst_outcome.job_id}`}>{shortId(st.signal.worst_outcome.job_id)}</a>
            </p>
          ) : null}
        </section>
      )}
      <h2>Jobs</h2>
      {jobs ? <JobTable jobs={jobs} /> : <Skeleton lines={4} />}
    </>
  );
}
