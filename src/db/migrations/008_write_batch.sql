-- The batch writer's one write (src/ledger/writer.ts): every row of a batch transaction, in
-- arrays. A function so that Postgres plans its statements once per session (a statement this
-- size costs milliseconds to parse and plan each time), and so that the call and COMMIT can
-- travel in one message.
--
-- k_*: jobs the caller did not read but knew from its own last write of them (src/ledger/known.ts),
-- as it expects their rows to be. They are locked first, without waiting (SKIP LOCKED: a row
-- another transaction holds counts as changed, so this never waits on a lock while the caller's
-- batches are chained); if any is not exactly as expected, nothing is written: 'stale'.
-- With p_guess, it then moves the tenant's ledger head from p_expect to p_expect + p_n, and
-- writes nothing when the head is not at p_expect: 'moved' (the caller guessed its positions,
-- and another writer got there first). Without, the caller took the positions already (and
-- holds the head row lock). p_notify, when not null, is the batch's one NOTIFY.
-- A changed job's lease_token (migration 005) is set by a claim and cleared outside running.
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
  ju_updated timestamptz[], ju_n integer[], ju_hash text[], ju_token text[],
  s_job uuid[], s_run uuid[], s_kind text[], s_phase text[], s_summary text[], s_eta bigint[], s_outcome jsonb[], s_actions jsonb[],
  s_diagnostics jsonb[], s_source text[], s_n integer[], s_hash text[], s_created timestamptz[], s_updated timestamptz[], s_new boolean[],
  b_host text[], b_capacity numeric[], b_base numeric[], b_refill numeric[], b_tokens numeric[], b_updated timestamptz[], b_penalty timestamptz[],
  p_notify text
) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
  v_known bigint;
BEGIN
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
        lease_expires_at = x.lease, updated_at = x.updated, history_n = x.n, last_hash = x.hash, lease_token = x.token
      FROM unnest(ju_id, ju_attempt, ju_state, ju_not_before, ju_owner, ju_lease, ju_updated, ju_n, ju_hash, ju_token)
        AS x(id, attempt, state, not_before, owner, lease, updated, n, hash, token)
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
