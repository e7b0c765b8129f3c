-- Input hardening (issue 9).

-- ETAs: the projection returns null beyond 365 days (signals/projection.ts MAX_ETA_SECONDS);
-- the column is wide enough for any ETA an older build may have computed, so a legal
-- progress report can never overflow it (it used to: integer, 22003 out of range).
ALTER TABLE okit.first_signal_snapshots ALTER COLUMN eta_seconds TYPE bigint;

-- A run belongs to its tenant: its identity is (tenant, id). Another tenant using the same
-- run id has another run, so a run id neither reveals that another tenant's run exists nor
-- lets one tenant squat ids another will pick.
ALTER TABLE okit.jobs DROP CONSTRAINT jobs_run_id_fkey;
ALTER TABLE okit.runs DROP CONSTRAINT runs_pkey;
ALTER TABLE okit.runs ADD PRIMARY KEY (tenant, id);
ALTER TABLE okit.jobs ADD CONSTRAINT jobs_run_fkey FOREIGN KEY (tenant, run_id) REFERENCES okit.runs (tenant, id);

-- The lease's fencing token, handed out by claim and required from the holder over HTTP, so
-- that a stale process sharing a worker id cannot report on a later attempt. Never exported
-- and never in history: only the claimer knows it. Null outside `running` (and for jobs
-- loaded from a bundle, which nobody works).
ALTER TABLE okit.jobs ADD COLUMN lease_token text CHECK (lease_token ~ '^[A-Za-z0-9_-]{22}$');
ALTER TABLE okit.jobs ADD CONSTRAINT jobs_lease_token_running CHECK (lease_token IS NULL OR state = 'running');
