-- The operator's control plane (issue 12).
--
-- New transitions: an operator's retry of a finished job (attempts given back), a queued job's
-- new priority, and a queue's pause and resume marked on each of its waiting jobs.
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
    ('resumed', 'throttled', 'throttled')
  ));

-- Pause and resume of a job type: append-only events at the tenant's ledger positions (like
-- throttle events), and the current state, which claims read (a row = the type is paused).
CREATE TABLE okit.queue_events (
  tenant okit.tenant_id NOT NULL,
  pos bigint NOT NULL CHECK (pos >= 1),
  type text NOT NULL CHECK (type ~ '^[A-Za-z0-9][A-Za-z0-9._:-]{0,99}$'),
  at timestamptz NOT NULL,
  event text NOT NULL CHECK (event IN ('paused', 'resumed')),
  data jsonb NOT NULL,
  PRIMARY KEY (tenant, pos)
);
CREATE TRIGGER queue_events_append_only BEFORE UPDATE OR DELETE ON okit.queue_events
  FOR EACH ROW EXECUTE FUNCTION okit.refuse_change();
CREATE TRIGGER queue_events_no_truncate BEFORE TRUNCATE ON okit.queue_events
  FOR EACH STATEMENT EXECUTE FUNCTION okit.refuse_change();

CREATE TABLE okit.queue_pauses (
  tenant okit.tenant_id NOT NULL,
  type text NOT NULL,
  actor text NOT NULL,
  reason text,
  paused_at timestamptz NOT NULL,
  PRIMARY KEY (tenant, type)
);

-- Failure signatures are retired, never deleted (history rows name them by id).
ALTER TABLE okit.failure_signatures ADD COLUMN retired_at timestamptz;
ALTER TABLE okit.failure_signatures ADD COLUMN retired_by text;
ALTER TABLE okit.failure_signatures ADD COLUMN created_by text;

-- Listing jobs: keyset pagination by (created_at, id) per tenant, and a run's jobs.
CREATE INDEX jobs_created_idx ON okit.jobs (tenant, created_at, id);
CREATE INDEX jobs_run_idx ON okit.jobs (tenant, run_id, created_at, id) WHERE run_id IS NOT NULL;
CREATE INDEX sources_tenant_idx ON okit.sources (tenant, name, id);
-- A bucket's last upstream throttle (okit throttle list).
CREATE INDEX throttle_events_host_idx ON okit.throttle_events (tenant, host, pos);

-- The batch writer's one write (migration 008's, known jobs included), now also with a job's priority, queue events, pause state and
-- the pause assumptions it checks under the head lock (every earlier signature dropped first).
DO $$
DECLARE f regprocedure;
BEGIN
  FOR f IN SELECT p.oid::regprocedure FROM pg_proc p WHERE p.proname = 'write_batch' AND p.pronamespace = 'okit'::regnamespace LOOP
    EXECUTE 'DROP FUNCTION ' || f;
  END LOOP;
END $$;

CREATE FUNCTION okit.write_batch(
  p_tenant text, p_guess boolean, p_expect bigint, p_n bigint,
  k_id uuid[], k_n integer[], k_hash text[], k_state text[], k_attempt integer[], k_owner text[], k_lease timestamptz[], k_token text[],
  k_not_before timestamptz[],
  h_pos bigint[], h_job uuid[], h_n integer[], h_at timestamptz[], h_event text[], h_from text[], h_to text[], h_data jsonb[], h_prev text[], h_hash text[],
  e_pos bigint[], e_host text[], e_at timestamptz[], e_event text[], e_data jsonb[],
  ji_id uuid[], ji_run uuid[], ji_source uuid[], ji_type text[], ji_payload jsonb[], ji_sha text[], ji_key text[], ji_priority integer[],
  ji_max integer[], ji_attempt integer[], ji_state text[], ji_not_before timestamptz[], ji_owner text[], ji_lease timestamptz[],
  ji_created timestamptz[], ji_updated timestamptz[], ji_n integer[], ji_hash text[],
  ju_id uuid[], ju_attempt integer[], ju_state text[], ju_not_before timestamptz[], ju_owner text[], ju_lease timestamptz[],
  ju_updated timestamptz[], ju_n integer[], ju_hash text[], ju_token text[], ju_priority integer[],
  s_job uuid[], s_run uuid[], s_kind text[], s_phase text[], s_summary text[], s_eta bigint[], s_outcome jsonb[], s_actions jsonb[],
  s_diagnostics jsonb[], s_source text[], s_n integer[], s_hash text[], s_created timestamptz[], s_updated timestamptz[], s_new boolean[],
  b_host text[], b_capacity numeric[], b_base numeric[], b_refill numeric[], b_tokens numeric[], b_updated timestamptz[], b_penalty timestamptz[],
  q_pos bigint[], q_type text[], q_at timestamptz[], q_event text[], q_data jsonb[],
  pz_type text[], pz_actor text[], pz_reason text[], pz_at timestamptz[], pr_type text[],
  a_type text[], a_paused boolean[],
  p_notify text
) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
  v_known bigint;
BEGIN
  -- Known jobs (migration 008): locked without waiting, exactly as the caller last wrote them, or 'stale'.
  IF cardinality(k_id) > 0 THEN
    SELECT count(*) INTO v_known FROM (
      SELECT 1 FROM okit.jobs j
        JOIN unnest(k_id, k_n, k_hash, k_state, k_attempt, k_owner, k_lease, k_token, k_not_before)
          AS k(id, n, hash, state, attempt, owner, lease, token, not_before) ON j.id = k.id
      WHERE j.tenant = p_tenant AND j.history_n = k.n AND j.last_hash = k.hash AND j.state = k.state AND j.attempt = k.attempt
        AND j.lease_owner IS NOT DISTINCT FROM k.owner AND j.lease_expires_at IS NOT DISTINCT FROM k.lease
        AND j.lease_token IS NOT DISTINCT FROM k.token AND j.not_before = k.not_before
      FOR UPDATE OF j SKIP LOCKED) q;
    IF v_known <> cardinality(k_id) THEN
      RETURN 'stale';
    END IF;
  END IF;
  IF p_guess THEN
    UPDATE okit.ledger_heads SET pos = pos + p_n WHERE tenant = p_tenant AND pos = p_expect;
    IF NOT FOUND THEN
      RETURN 'moved';
    END IF;
  END IF;
  -- Under the head lock: every queue's pause state the batch's units relied on must still hold
  -- (a pause or resume committed since they read it makes the batch run again, unit by unit).
  IF cardinality(a_type) > 0 AND EXISTS (
      SELECT 1 FROM unnest(a_type, a_paused) AS a(type, paused)
      WHERE a.paused <> EXISTS (SELECT 1 FROM okit.queue_pauses p WHERE p.tenant = p_tenant AND p.type = a.type)) THEN
    RAISE EXCEPTION 'okit: a queue was paused or resumed while the batch was prepared' USING ERRCODE = 'serialization_failure';
  END IF;
  DELETE FROM okit.queue_pauses WHERE tenant = p_tenant AND type = ANY(pr_type);
  INSERT INTO okit.queue_pauses (tenant, type, actor, reason, paused_at)
    SELECT p_tenant, x.* FROM unnest(pz_type, pz_actor, pz_reason, pz_at) AS x;
  INSERT INTO okit.queue_events (tenant, pos, type, at, event, data)
    SELECT p_tenant, x.* FROM unnest(q_pos, q_type, q_at, q_event, q_data) AS x;
  WITH
  ji AS (
    INSERT INTO okit.jobs (id, tenant, run_id, source_id, type, payload, payload_sha256, idempotency_key, priority, max_attempts, attempt,
        state, not_before, lease_owner, lease_expires_at, created_at, updated_at, history_n, last_hash)
      SELECT x.id, p_tenant, x.run_id, x.source_id, x.type, x.payload, x.sha, x.key, x.priority, x.max_attempts, x.attempt,
        x.state, x.not_before, x.owner, x.lease, x.created, x.updated, x.n, x.hash
      FROM unnest(ji_id, ji_run, ji_source, ji_type, ji_payload, ji_sha, ji_key, ji_priority, ji_max, ji_attempt, ji_state, ji_not_before,
        ji_owner, ji_lease, ji_created, ji_updated, ji_n, ji_hash)
        AS x(id, run_id, source_id, type, payload, sha, key, priority, max_attempts, attempt, state, not_before, owner, lease, created, updated, n, hash)),
  ju AS (
    UPDATE okit.jobs j SET attempt = x.attempt, state = x.state, not_before = x.not_before, lease_owner = x.owner,
        lease_expires_at = x.lease, updated_at = x.updated, history_n = x.n, last_hash = x.hash, lease_token = x.token, priority = x.priority
      FROM unnest(ju_id, ju_attempt, ju_state, ju_not_before, ju_owner, ju_lease, ju_updated, ju_n, ju_hash, ju_token, ju_priority)
        AS x(id, attempt, state, not_before, owner, lease, updated, n, hash, token, priority)
      WHERE j.id = x.id),
  h AS (
    INSERT INTO okit.job_history (tenant, pos, job_id, n, at, event, from_state, to_state, data, prev_hash, hash)
      SELECT p_tenant, x.* FROM unnest(h_pos, h_job, h_n, h_at, h_event, h_from, h_to, h_data, h_prev, h_hash) AS x),
  e AS (
    INSERT INTO okit.throttle_events (tenant, pos, host, at, event, data)
      SELECT p_tenant, x.* FROM unnest(e_pos, e_host, e_at, e_event, e_data) AS x),
  x AS (
    SELECT * FROM unnest(s_job, s_run, s_kind, s_phase, s_summary, s_eta, s_outcome, s_actions, s_diagnostics, s_source, s_n, s_hash,
      s_created, s_updated, s_new)
      AS x(job_id, run_id, kind, phase, summary, eta, outcome, actions, diagnostics, source, n, hash, created, updated, is_new)),
  -- A new job's first snapshot is a plain insert; a known job's is rewritten in place (a HOT
  -- update: no snapshot column is indexed but job_id), and inserted only if it had none.
  su AS (
    UPDATE okit.first_signal_snapshots s SET kind = x.kind, phase = x.phase, summary = x.summary, eta_seconds = x.eta,
        last_known_outcome = x.outcome, next_actions = x.actions, diagnostics = x.diagnostics, source = x.source,
        history_n = x.n, history_hash = x.hash, updated_at = x.updated
      FROM x WHERE NOT x.is_new AND s.job_id = x.job_id
      RETURNING s.job_id),
  si AS (
    INSERT INTO okit.first_signal_snapshots (job_id, tenant, run_id, kind, phase, summary, eta_seconds, last_known_outcome, next_actions,
        diagnostics, source, history_n, history_hash, created_at, updated_at)
      SELECT x.job_id, p_tenant, x.run_id, x.kind, x.phase, x.summary, x.eta, x.outcome, x.actions, x.diagnostics, x.source, x.n, x.hash,
        x.created, x.updated
      FROM x WHERE x.is_new OR x.job_id NOT IN (SELECT job_id FROM su))
  UPDATE okit.throttles t SET capacity = b.capacity, base_refill_per_sec = b.base, refill_per_sec = b.refill, tokens = b.tokens,
      updated_at = b.updated, penalty_until = b.penalty
    FROM unnest(b_host, b_capacity, b_base, b_refill, b_tokens, b_updated, b_penalty)
      AS b(host, capacity, base, refill, tokens, updated, penalty)
    WHERE t.tenant = p_tenant AND t.host = b.host;
  IF p_notify IS NOT NULL THEN
    PERFORM pg_notify('okit_signal', p_notify);
  END IF;
  RETURN 'ok';
END $$;
