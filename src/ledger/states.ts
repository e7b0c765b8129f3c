/**
 * The job state machine, written down once. The SQL CHECK on okit.job_history
 * (migrations 001, 010 and 014) lists the same triples; a test keeps the two equal. Finished
 * states (succeeded, failed, dead_letter, canceled) are left only by an operator's retry.
 *
 * ```mermaid
 * stateDiagram-v2
 *   [*] --> queued: enqueued
 *   queued --> running: claimed
 *   throttled --> running: claimed
 *   queued --> throttled: throttled
 *   throttled --> throttled: throttled
 *   running --> running: progress / stalled
 *   running --> succeeded: succeeded
 *   running --> queued: retry_scheduled / lease_expired
 *   running --> failed: failed
 *   running --> dead_letter: dead_lettered / lease_expired
 *   queued --> canceled: canceled
 *   throttled --> canceled: canceled
 *   running --> canceled: canceled
 *   failed --> queued: retried
 *   dead_letter --> queued: retried
 *   canceled --> queued: retried
 *   queued --> queued: prioritized / paused / resumed
 *   throttled --> throttled: prioritized / paused / resumed
 *   succeeded --> [*]
 *   failed --> [*]
 *   dead_letter --> [*]
 *   canceled --> [*]
 * ```
 */
export const JOB_STATES = ['queued', 'throttled', 'running', 'succeeded', 'failed', 'dead_letter', 'canceled'] as const;
export type JobState = (typeof JOB_STATES)[number];

/** Finished: no worker or reaper moves a job out of these; only an operator's `retried` (not from succeeded). */
export const TERMINAL_STATES: ReadonlySet<JobState> = new Set(['succeeded', 'failed', 'dead_letter', 'canceled']);

export const EVENTS = [
  'enqueued',
  'claimed',
  'throttled',
  'progress',
  'succeeded',
  'retry_scheduled',
  'failed',
  'dead_lettered',
  'lease_expired',
  'canceled',
  'retried',
  'prioritized',
  'paused',
  'resumed',
  'stalled',
] as const;
export type JobEvent = (typeof EVENTS)[number];

/** event → allowed [from, to] pairs. `null` from means "no job yet". */
export const TRANSITIONS: Readonly<Record<JobEvent, ReadonlyArray<readonly [JobState | null, JobState]>>> = {
  enqueued: [[null, 'queued']],
  claimed: [
    ['queued', 'running'],
    ['throttled', 'running'],
  ],
  throttled: [
    ['queued', 'throttled'],
    ['throttled', 'throttled'],
  ],
  progress: [['running', 'running']],
  /** The sweeper's mark: no progress for longer than stall_after (docs/eta.md); the next progress clears it. */
  stalled: [['running', 'running']],
  succeeded: [['running', 'succeeded']],
  retry_scheduled: [['running', 'queued']],
  failed: [['running', 'failed']],
  dead_lettered: [['running', 'dead_letter']],
  lease_expired: [
    ['running', 'queued'],
    ['running', 'dead_letter'],
  ],
  canceled: [
    ['queued', 'canceled'],
    ['throttled', 'canceled'],
    ['running', 'canceled'],
  ],
  retried: [
    ['failed', 'queued'],
    ['dead_letter', 'queued'],
    ['canceled', 'queued'],
  ],
  prioritized: [
    ['queued', 'queued'],
    ['throttled', 'throttled'],
  ],
  paused: [
    ['queued', 'queued'],
    ['throttled', 'throttled'],
  ],
  resumed: [
    ['queued', 'queued'],
    ['throttled', 'throttled'],
  ],
};

/** Operator events: the only transitions a finished job can take is `retried`. */
export const OPERATOR_EVENTS: ReadonlySet<JobEvent> = new Set(['canceled', 'retried', 'prioritized', 'paused', 'resumed']);

export function isAllowed(event: JobEvent, from: JobState | null, to: JobState): boolean {
  return TRANSITIONS[event].some(([f, t]) => f === from && t === to);
}

/** Every (event, from, to) triple, for tests and docs. */
export function allTransitions(): Array<[JobEvent, JobState | null, JobState]> {
  return EVENTS.flatMap((e) => TRANSITIONS[e].map(([f, t]) => [e, f, t] as [JobEvent, JobState | null, JobState]));
}
