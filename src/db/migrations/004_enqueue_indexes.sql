-- Enqueue looks up the last finished job of the same tenant and type (the signal's
-- last_known_outcome); without this index that was a scan of every job, so enqueue slowed
-- down as the ledger grew.
CREATE INDEX jobs_finished_idx ON okit.jobs (tenant, type, updated_at DESC, id DESC)
  WHERE state IN ('succeeded', 'failed', 'dead_letter', 'canceled');
