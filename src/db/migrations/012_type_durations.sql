-- Issue 14 (docs/eta.md): per {tenant, type}, the run durations (last claim → success, in
-- microseconds, oldest first) of the type's last 50 successes. The ETA inputs written on history
-- rows take their p50 from here: one primary-key read, never a scan of the history.
-- A cache of the history, kept by the trigger below in the transaction that inserts the
-- `succeeded` row (the writer's batch, or a bundle import): it can be rebuilt from
-- job_history and is not exported (each row carries the p50 it used).
CREATE TABLE okit.type_durations (
  tenant okit.tenant_id NOT NULL,
  type text NOT NULL,
  durations_us bigint[] NOT NULL CHECK (cardinality(durations_us) BETWEEN 1 AND 50),
  updated_at timestamptz NOT NULL,
  PRIMARY KEY (tenant, type)
);

CREATE FUNCTION okit.record_type_duration() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  claimed_at timestamptz;
  job_type text;
  d bigint;
BEGIN
  -- This attempt's claim: a backward walk of the job's own rows (UNIQUE (job_id, n)).
  SELECT h.at INTO claimed_at FROM okit.job_history h
   WHERE h.job_id = NEW.job_id AND h.n < NEW.n AND h.event = 'claimed'
   ORDER BY h.n DESC LIMIT 1;
  IF claimed_at IS NULL THEN
    RETURN NULL;
  END IF;
  SELECT j.type INTO job_type FROM okit.jobs j WHERE j.id = NEW.job_id;
  -- A clock that went backwards gives 0, not a negative duration.
  d := greatest(0, (extract(epoch FROM NEW.at - claimed_at) * 1000000)::bigint);
  INSERT INTO okit.type_durations AS t (tenant, type, durations_us, updated_at)
  VALUES (NEW.tenant, job_type, ARRAY[d], NEW.at)
  ON CONFLICT (tenant, type) DO UPDATE
    SET durations_us = (t.durations_us || d)[greatest(1, cardinality(t.durations_us) + 1 - 49):],
        updated_at = greatest(t.updated_at, EXCLUDED.updated_at);
  RETURN NULL;
END $$;

CREATE TRIGGER job_history_type_duration AFTER INSERT ON okit.job_history
  FOR EACH ROW WHEN (NEW.event = 'succeeded') EXECUTE FUNCTION okit.record_type_duration();
