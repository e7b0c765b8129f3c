/** The console: hash routes, the session, and the views. Everything is rendered as text. */
import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { ApiError, call, currentSession, SESSION, setSession, whenUnauthenticated, type Session } from './api.js';
import { hub, type StreamMode } from './signals.js';
import { Dashboard, DeadLetters, Sources, Throttles } from './views-ops.js';
import { JobPage, JobsList, RunPage } from './views-jobs.js';

export interface Route {
  path: string[];
  query: URLSearchParams;
  /** performance.now() when this route was entered. */
  at: number;
}

function parseHash(): Route {
  const h = location.hash.replace(/^#/, '') || '/jobs';
  const q = h.indexOf('?');
  const path = (q < 0 ? h : h.slice(0, q)).split('/').filter(Boolean).map(decodeURIComponent);
  return { path, query: new URLSearchParams(q < 0 ? '' : h.slice(q + 1)), at: performance.now() };
}

export const go = (hash: string) => {
  location.hash = hash;
};

function SignIn({ route, why }: { route: Route; why: string }) {
  const [token, setToken] = useState('');
  const [err, setErr] = useState('');
  const [busy, setBusy] = useState(false);
  const exchange = async (body: { token: string } | { link: string }) => {
    setBusy(true);
    setErr('');
    try {
      const r = await call<{ session: Session }>(SESSION, { method: 'POST', body, quiet401: true });
      setSession(r.body!.session);
      go(route.query.get('next') ?? '#/jobs');
    } catch (e) {
      setErr(e instanceof ApiError ? `${e.code}: ${e.message}` : String(e));
    } finally {
      setBusy(false);
    }
  };
  const link = route.query.get('link');
  useEffect(() => {
    if (link) {
      // The code must not linger in the address bar or history.
      history.replaceState(null, '', '#/signin');
      void exchange({ link });
    }
  }, [link]);
  return (
    <main class="signin">
      <h1>Sign in to okit</h1>
      {why ? (
        <p class="notice" role="alert">
          {why}
        </p>
      ) : null}
      <form
        onSubmit={(e) => {
          e.preventDefault();
          if (token.trim()) void exchange({ token: token.trim() });
        }}
      >
        <label for="token">API token</label>
        <input id="token" name="token" type="password" autocomplete="off" value={token} onInput={(e) => setToken((e.target as HTMLInputElement).value)} />
        <button type="submit" disabled={busy}>
          Sign in
        </button>
      </form>
      <p class="hint">Or open a one-time link from <code>okit console-link --tenant T --scope read|admin</code>.</p>
      {err ? (
        <p class="error-text" role="alert">
          {err}
        </p>
      ) : null}
    </main>
  );
}

const NAV: Array<[string, string]> = [
  ['#/dashboard', 'Dashboard'],
  ['#/jobs', 'Jobs'],
  ['#/throttles', 'Throttles'],
  ['#/dead-letters', 'Dead letters'],
  ['#/sources', 'Sources'],
];

function Shell({ route, mode, children }: { route: Route; mode: StreamMode; children: preact.ComponentChildren }) {
  const s = currentSession()!;
  return (
    <>
      <header class="top">
        <a class="brand" href="#/dashboard">
          okit
        </a>
        <nav aria-label="Main">
          {NAV.map(([href, label]) => (
            <a key={href} href={href} aria-current={href.slice(2) === route.path[0] ? 'page' : undefined}>
              {label}
            </a>
          ))}
        </nav>
        <span class="who" data-testid="who">
          {s.tenant} · {s.scope}
        </span>
        <span class={`conn conn-${mode}`} data-testid="conn" title="Live updates">
          {mode === 'live' ? '● live' : mode === 'polling' ? '◌ polling' : mode === 'connecting' ? '◌ connecting' : '○ idle'}
        </span>
        <button
          type="button"
          onClick={async () => {
            await call(SESSION, { method: 'DELETE', quiet401: true }).catch(() => {});
            setSession(null);
            hub.stop();
            go('#/signin');
          }}
        >
          Sign out
        </button>
      </header>
      {children}
    </>
  );
}

function App() {
  const [route, setRoute] = useState<Route>(parseHash);
  const [ready, setReady] = useState(false);
  const [why, setWhy] = useState('');
  const [mode, setMode] = useState<StreamMode>(hub.mode);
  useEffect(() => {
    const onHash = () => setRoute(parseHash());
    addEventListener('hashchange', onHash);
    hub.onMode = setMode;
    whenUnauthenticated((code) => {
      hub.stop();
      setWhy(code === 'SESSION_EXPIRED' ? 'Your session has expired: sign in again.' : 'You are signed out: sign in again.');
      if (parseHash().path[0] !== 'signin') go(`#/signin?next=${encodeURIComponent(location.hash || '#/jobs')}`);
    });
    call<{ session: Session }>(SESSION, { quiet401: true })
      .then((r) => setSession(r.body!.session))
      .catch(() => setSession(null))
      .finally(() => setReady(true));
    // A session ends while a page only listens (an open stream asks nothing): check it each
    // minute, so an expired or revoked session goes back to sign-in without a click.
    const check = setInterval(() => {
      if (currentSession()) call(SESSION).catch(() => {});
    }, 60_000);
    return () => {
      clearInterval(check);
      removeEventListener('hashchange', onHash);
    };
  }, []);
  if (!ready) return <div class="skeleton boot" aria-hidden="true"><div class="skeleton-line" /><div class="skeleton-line" /><div class="skeleton-line" /></div>;
  const [top, id] = route.path;
  if (top === 'signin' || !currentSession()) {
    if (top !== 'signin') {
      queueMicrotask(() => go(`#/signin?next=${encodeURIComponent(location.hash || '#/jobs')}`));
      return <p class="boot">Signing in…</p>;
    }
    return <SignIn route={route} why={why} />;
  }
  let view;
  if (top === 'jobs' && id) view = <JobPage key={id} id={id} route={route} />;
  else if (top === 'runs' && id) view = <RunPage key={id} id={id} route={route} />;
  else if (top === 'dashboard') view = <Dashboard />;
  else if (top === 'throttles') view = <Throttles />;
  else if (top === 'dead-letters') view = <DeadLetters />;
  else if (top === 'sources') view = <Sources />;
  else view = <JobsList route={route} />;
  return (
    <Shell route={route} mode={mode}>
      <main id="main">{view}</main>
    </Shell>
  );
}

const root = document.getElementById('app')!;
root.textContent = ''; // the static skeleton of index.html, shown until this script runs
render(<App />, root);
