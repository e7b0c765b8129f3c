-- offline-kit ledger schema, version 1.
-- Forward-only: never edit this file once applied; add a new numbered file instead.
-- All timestamps are supplied by the application's clock (never now()) so that a
-- simulation with a fixed clock is reproducible byte for byte.

CREATE SCHEMA IF NOT EXISTS okit;

CREATE DOMAIN okit.tenant_id AS text
  CHECK (VALUE ~ '^[a-z0-9][a-z0-9._-]{0,63}$');

-- One row per tenant: the ledger head. Every history row and throttle event takes the
-- next position by updating this row, so a tenant's positions are dense, gap-free and
-- in commit order (the row lock is held to commit). Exports cut the ledger by position.
CREATE TABLE okit.ledger_heads (
  tenant okit.tenant_id PRIMARY KEY,
  pos bigint NOT NULL CHECK (pos >= 0)
);

CREATE TABLE okit.sources (
  id uuid PRIMARY KEY,
  tenant okit.tenant_id NOT NULL,
  name text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
  host text NOT NULL CHECK (host ~ '^[A-Za-z0-9.-]{1,253}(:[0-9]{1,5})?$'),
  created_at timestamptz NOT NULL,
  UNIQUE (tenant, name)
);

CREATE TABLE okit.runs (
  id uuid PRIMARY KEY,
  tenant okit.tenant_id NOT NULL,
  source_id uuid REFERENCES okit.sources(id),
  created_at timestamptz NOT NULL
);

CREATE TABLE okit.jobs (
  id uuid PRIMARY KEY,
  tenant okit.tenant_id NOT NULL,
  run_id uuid REFERENCES okit.runs(id),
  source_id uuid REFERENCES okit.sources(id),
  type text NOT NULL CHECK (type ~ '^[A-Za-z0-9][A-Za-z0-9._:-]{0,99}$'),
  payload jsonb NOT NULL,
  payload_sha256 text NOT NULL CHECK (payload_sha256 ~ '^[0-9a-f]{64}$'),
  idempotency_key text CHECK (length(idempotency_key) BETWEEN 1 AND 200),
  priority integer NOT NULL DEFAULT 0 CHECK (priority BETWEEN -1000 AND 1000),
  max_attempts integer NOT NULL CHECK (max_attempts BETWEEN 1 AND 100),
  attempt integer NOT NULL DEFAULT 0 CHECK (attempt >= 0 AND attempt <= max_attempts),
  state text NOT NULL CHECK (state IN ('queued','throttled','running','succeeded','failed','dead_letter','canceled')),
  not_before timestamptz NOT NULL,
  lease_owner text,
  lease_expires_at timestamptz,
  created_at timestamptz NOT NULL,
  updated_at timestamptz NOT NULL,
  history_n integer NOT NULL CHECK (history_n >= 1),
  last_hash text NOT NULL CHECK (last_hash ~ '^[0-9a-f]{64}$'),
  UNIQUE (tenant, idempotency_key),
  -- A running job always has a lease; nothing else does.
  CHECK ((state = 'running') = (lease_owner IS NOT NULL AND lease_expires_at IS NOT NULL))
);
CREATE INDEX jobs_claim_idx ON okit.jobs (tenant, type, priority DESC, not_before, created_at, id)
  WHERE state IN ('queued', 'throttled');
CREATE INDEX jobs_lease_idx ON okit.jobs (lease_expires_at) WHERE state = 'running';

-- Append-only, hash-chained history. One row per transition.
CREATE TABLE okit.job_history (
  tenant okit.tenant_id NOT NULL,
  pos bigint NOT NULL CHECK (pos >= 1),
  job_id uuid NOT NULL REFERENCES okit.jobs(id),
  n integer NOT NULL CHECK (n >= 1),
  at timestamptz NOT NULL,
  event text NOT NULL,
  from_state text,
  to_state text NOT NULL,
  data jsonb NOT NULL,
  prev_hash text CHECK (prev_hash ~ '^[0-9a-f]{64}$'),
  hash text NOT NULL CHECK (hash ~ '^[0-9a-f]{64}$'),
  PRIMARY KEY (tenant, pos),
  UNIQUE (job_id, n),
  CHECK ((n = 1) = (prev_hash IS NULL)),
  -- The state machine (src/ledger/states.ts); a test keeps both lists equal.
  CONSTRAINT job_history_transition CHECK ((event, coalesce(from_state, '-'), to_state) IN (
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
    ('canceled', 'running', 'canceled')
  ))
);
CREATE INDEX job_history_job_idx ON okit.job_history (job_id, n);

CREATE FUNCTION okit.refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'okit: % on %.% is not allowed: the ledger is append-only', TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME
    USING ERRCODE = 'insufficient_privilege';
END $$;

CREATE TRIGGER job_history_append_only BEFORE UPDATE OR DELETE ON okit.job_history
  FOR EACH ROW EXECUTE FUNCTION okit.refuse_change();
CREATE TRIGGER job_history_no_truncate BEFORE TRUNCATE ON okit.job_history
  FOR EACH STATEMENT EXECUTE FUNCTION okit.refuse_change();

-- Token bucket per {tenant, source host}. Numerics keep exact decimal state.
CREATE TABLE okit.throttles (
  tenant okit.tenant_id NOT NULL,
  host text NOT NULL,
  capacity numeric(12,3) NOT NULL CHECK (capacity >= 1),
  base_refill_per_sec numeric(12,6) NOT NULL CHECK (base_refill_per_sec > 0),
  refill_per_sec numeric(12,6) NOT NULL CHECK (refill_per_sec > 0),
  tokens numeric(12,6) NOT NULL CHECK (tokens >= 0),
  updated_at timestamptz NOT NULL,
  penalty_until timestamptz,
  PRIMARY KEY (tenant, host)
);

-- Throttle events share the tenant's ledger positions with job history.
CREATE TABLE okit.throttle_events (
  tenant okit.tenant_id NOT NULL,
  pos bigint NOT NULL CHECK (pos >= 1),
  host text NOT NULL,
  at timestamptz NOT NULL,
  event text NOT NULL CHECK (event IN ('configured', 'upstream_throttled', 'refill_restored')),
  data jsonb NOT NULL,
  PRIMARY KEY (tenant, pos)
);
CREATE TRIGGER throttle_events_append_only BEFORE UPDATE OR DELETE ON okit.throttle_events
  FOR EACH ROW EXECUTE FUNCTION okit.refuse_change();

-- The first signal of every job: a projection of its history, rewritten with each row.
CREATE TABLE okit.first_signal_snapshots (
  job_id uuid PRIMARY KEY REFERENCES okit.jobs(id),
  tenant okit.tenant_id NOT NULL,
  run_id uuid,
  kind text NOT NULL CHECK (kind IN ('queued','started','phase','blocked','failed','succeeded','canceled','unavailable')),
  phase text NOT NULL CHECK (phase IN ('resolve','fetch','restore','analyze','policy','report','unknown')),
  summary text NOT NULL,
  eta_seconds integer CHECK (eta_seconds >= 0),
  last_known_outcome jsonb,
  next_actions jsonb,
  diagnostics jsonb NOT NULL,
  source text NOT NULL CHECK (source IN ('snapshot', 'failure_index')),
  -- The history row this snapshot projects: (n, hash) is the job's version and ETag.
  history_n integer NOT NULL,
  history_hash text NOT NULL,
  created_at timestamptz NOT NULL,
  updated_at timestamptz NOT NULL
);
CREATE INDEX first_signal_snapshots_tenant_kind ON okit.first_signal_snapshots (tenant, kind);

-- Time-to-first-signal telemetry, as measured by clients (CLI, demo).
CREATE TABLE okit.ttfs_events (
  id bigserial PRIMARY KEY,
  ts timestamptz NOT NULL,
  tenant okit.tenant_id NOT NULL,
  job_id uuid NOT NULL,
  surface text NOT NULL CHECK (surface IN ('ui', 'cli', 'ci')),
  event_type text NOT NULL CHECK (event_type IN ('signal.start','signal.rendered','signal.timeout','signal.error','signal.cache_hit','signal.cold_start')),
  ttfs_ms integer NOT NULL CHECK (ttfs_ms >= 0),
  cache_hit boolean NOT NULL DEFAULT false,
  signal_source text CHECK (signal_source IN ('snapshot', 'cold_start', 'failure_index')),
  kind text,
  phase text,
  error_code text,
  metadata jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX ttfs_events_tenant_ts ON okit.ttfs_events (tenant, ts DESC);

-- Known failure patterns: a failing job whose error code (and phase) matches gets the
-- signature's likely cause and suggested action in its signal.
CREATE TABLE okit.failure_signatures (
  id uuid PRIMARY KEY,
  tenant okit.tenant_id NOT NULL,
  signature_sha256 text NOT NULL CHECK (signature_sha256 ~ '^[0-9a-f]{64}$'),
  pattern jsonb NOT NULL,
  outcome jsonb NOT NULL,
  confidence numeric(4,3) NOT NULL DEFAULT 0.5 CHECK (confidence BETWEEN 0 AND 1),
  sample_count integer NOT NULL DEFAULT 0 CHECK (sample_count >= 0),
  enabled boolean NOT NULL DEFAULT true,
  created_at timestamptz NOT NULL,
  UNIQUE (tenant, signature_sha256)
);
