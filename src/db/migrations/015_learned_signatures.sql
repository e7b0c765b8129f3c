-- Issue 14 (docs/eta.md, "Signatures that learn"): failure signatures learn from the failures
-- they match. The writer records what was learned on the failure's own history row
-- (data.signature: sample_count, last_seen, confidence, mttr_p50_seconds, and for a learned
-- signature its key); the triggers below keep okit.failure_signatures in step with those rows,
-- in the transaction that inserts them (the writer's batch, or a bundle import), so the table
-- is a cache of the history and bundles need not carry it.
--
-- learned_key: null for an operator's signature; {type, phase, error_code} for one the ledger
-- created because no signature matched. Operator text (outcome) is never written here.
-- mttr_us: the last 50 failure -> next success (same type) intervals, oldest first.
-- learned_confidence: the formula's value (sample count and recency). `confidence` stays the
-- ranking among matches: an operator's own value for theirs (never overwritten by learning, like
-- their text), the learned value for a learned one.
ALTER TABLE okit.failure_signatures
  ADD COLUMN learned_key jsonb,
  ADD COLUMN learned_confidence numeric(4,3) CHECK (learned_confidence BETWEEN 0 AND 1),
  ADD COLUMN last_seen timestamptz,
  ADD COLUMN mttr_us bigint[] NOT NULL DEFAULT '{}' CHECK (cardinality(mttr_us) <= 50);

-- Failures of a signature not yet followed by a success of their job type (at most 50 each).
CREATE TABLE okit.signature_open_failures (
  tenant okit.tenant_id NOT NULL,
  type text NOT NULL,
  signature_id uuid NOT NULL,
  failed_at timestamptz[] NOT NULL CHECK (cardinality(failed_at) BETWEEN 1 AND 50),
  PRIMARY KEY (tenant, type, signature_id)
);

CREATE FUNCTION okit.record_signature_sample() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  s jsonb := NEW.data->'signature';
  sid uuid := (s->>'id')::uuid;
  job_type text;
BEGIN
  IF s ? 'learned' THEN
    INSERT INTO okit.failure_signatures (id, tenant, signature_sha256, pattern, outcome, confidence, learned_confidence, sample_count, enabled, created_at, learned_key, last_seen)
    VALUES (sid, NEW.tenant, encode(sha256(convert_to('learned:' || NEW.tenant || ':' || (s->'learned')::text, 'UTF8')), 'hex'),
            s->'learned', '{}', (s->>'confidence')::numeric, (s->>'confidence')::numeric, (s->>'sample_count')::int, true, NEW.at, s->'learned', NEW.at)
    ON CONFLICT DO NOTHING;
  END IF;
  UPDATE okit.failure_signatures
     SET sample_count = greatest(sample_count, (s->>'sample_count')::int),
         last_seen = greatest(last_seen, NEW.at),
         learned_confidence = (s->>'confidence')::numeric,
         confidence = CASE WHEN learned_key IS NULL THEN confidence ELSE (s->>'confidence')::numeric END
   WHERE id = sid AND tenant = NEW.tenant;
  SELECT j.type INTO job_type FROM okit.jobs j WHERE j.id = NEW.job_id;
  INSERT INTO okit.signature_open_failures AS o (tenant, type, signature_id, failed_at)
  VALUES (NEW.tenant, job_type, sid, ARRAY[NEW.at])
  ON CONFLICT (tenant, type, signature_id) DO UPDATE
    SET failed_at = (o.failed_at || NEW.at)[greatest(1, cardinality(o.failed_at) + 1 - 49):];
  RETURN NULL;
END $$;

CREATE TRIGGER job_history_signature_sample AFTER INSERT ON okit.job_history
  FOR EACH ROW WHEN (NEW.data ? 'signature' AND (NEW.data->'signature') ? 'sample_count')
  EXECUTE FUNCTION okit.record_signature_sample();

-- A success closes its type's open failures: each gives one MTTR sample (failure -> this success).
CREATE FUNCTION okit.record_signature_mttr() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  job_type text;
  o record;
BEGIN
  SELECT j.type INTO job_type FROM okit.jobs j WHERE j.id = NEW.job_id;
  FOR o IN DELETE FROM okit.signature_open_failures WHERE tenant = NEW.tenant AND type = job_type RETURNING signature_id, failed_at LOOP
    UPDATE okit.failure_signatures f
       SET mttr_us = (f.mttr_us || ARRAY(SELECT greatest(0, (extract(epoch FROM NEW.at - x) * 1000000)::bigint) FROM unnest(o.failed_at) AS x))
                     [greatest(1, cardinality(f.mttr_us) + cardinality(o.failed_at) + 1 - 50):]
     WHERE f.id = o.signature_id AND f.tenant = NEW.tenant;
  END LOOP;
  RETURN NULL;
END $$;

CREATE TRIGGER job_history_signature_mttr AFTER INSERT ON okit.job_history
  FOR EACH ROW WHEN (NEW.event = 'succeeded') EXECUTE FUNCTION okit.record_signature_mttr();
