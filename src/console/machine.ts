/**
 * The FirstSignalCard's load state machine (pure: no DOM, no clock).
 *
 *   idle ──load──▶ loading ──signal──▶ streaming ──signal(terminal)──▶ done
 *                    │  ▲                 │
 *                  fail └──load── error ◀─┘ fail
 *
 * idle → loading → streaming | error; streaming → done | error; error → loading.
 * `done` also goes back to loading on `load` (a retry from the page makes the job live again).
 * An event a state has no arrow for leaves it as it was.
 */
export type LoadState = 'idle' | 'loading' | 'streaming' | 'done' | 'error';
export type LoadEvent = { type: 'load' } | { type: 'signal'; terminal: boolean } | { type: 'fail' };

export const TERMINAL_KINDS: ReadonlySet<string> = new Set(['succeeded', 'failed', 'canceled']);

export function next(s: LoadState, e: LoadEvent): LoadState {
  switch (s) {
    case 'idle':
      return e.type === 'load' ? 'loading' : s;
    case 'loading':
      return e.type === 'signal' ? 'streaming' : e.type === 'fail' ? 'error' : s;
    case 'streaming':
      return e.type === 'signal' ? (e.terminal ? 'done' : s) : e.type === 'fail' ? 'error' : s;
    case 'error':
      return e.type === 'load' ? 'loading' : s;
    case 'done':
      return e.type === 'load' ? 'loading' : s;
  }
}

/** A signal arriving while loading is first shown (streaming) and, if terminal, settles at once (done). */
export function onSignal(s: LoadState, terminal: boolean): LoadState {
  const a = next(s, { type: 'signal', terminal });
  return a === 'streaming' && terminal && s === 'loading' ? next(a, { type: 'signal', terminal }) : a;
}
