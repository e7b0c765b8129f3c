-- Indexes every transition paid for and no query uses.
-- okit.job_history had two indexes on (job_id, n): the UNIQUE constraint's and
-- job_history_job_idx (migration 001); the unique one serves every lookup by job.
DROP INDEX okit.job_history_job_idx;
-- first_signal_snapshots (tenant, kind): no query reads snapshots by kind, and with kind indexed
-- no snapshot rewrite (each transition's) could be a HOT update.
DROP INDEX okit.first_signal_snapshots_tenant_kind;
-- Every transition rewrites its job's snapshot: leave room on each page for the new version, so
-- the rewrite stays on the page (a HOT update, no index touched).
ALTER TABLE okit.first_signal_snapshots SET (fillfactor = 70);
