-- Issue 14 (docs/eta.md, "Stalled detection"): the sweeper marks a running job that made no
-- progress for longer than its type's stall_after with a `stalled` row (running -> running).
-- The job stays running; its next `progress` row clears the mark.
ALTER TABLE okit.job_history DROP CONSTRAINT job_history_transition;
ALTER TABLE okit.job_history ADD CONSTRAINT job_history_transition CHECK ((event, coalesce(from_state, '-'), to_state) IN (
    ('enqueued', '-', 'queued'),
    ('claimed', 'queued', 'running'),
    ('claimed', 'throttled', 'running'),
    ('throttled', 'queued', 'throttled'),
    ('throttled', 'throttled', 'throttled'),
    ('progress', 'running', 'running'),
    ('succeeded', 'running', 'succeeded'),
    ('retry_scheduled', 'running', 'queued'),
    ('failed', 'running', 'failed'),
    ('dead_lettered', 'running', 'dead_letter'),
    ('lease_expired', 'running', 'queued'),
    ('lease_expired', 'running', 'dead_letter'),
    ('canceled', 'queued', 'canceled'),
    ('canceled', 'throttled', 'canceled'),
    ('canceled', 'running', 'canceled'),
    ('retried', 'failed', 'queued'),
    ('retried', 'dead_letter', 'queued'),
    ('retried', 'canceled', 'queued'),
    ('prioritized', 'queued', 'queued'),
    ('prioritized', 'throttled', 'throttled'),
    ('paused', 'queued', 'queued'),
    ('paused', 'throttled', 'throttled'),
    ('resumed', 'queued', 'queued'),
    ('resumed', 'throttled', 'throttled'),
    ('stalled', 'running', 'running')
  ));
