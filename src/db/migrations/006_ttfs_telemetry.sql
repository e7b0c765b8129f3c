-- Time-to-first-signal telemetry from every surface, SLO targets and rollup views.
-- okit.ttfs_events (001) becomes what the telemetry endpoint and the server write:
--   * ttfs_ms holds microsecond precision (the server's own part is often under 1 ms) and is
--     bounded: 0 .. 3,600,000 ms (an hour; anything beyond is a broken clock, not a wait);
--   * run_id is the job's run; server_ms is the server's part of a client's first signal;
--   * kind, phase and error_code are checked like the ledger's own values.
-- Telemetry is operational data: `okit prune telemetry` deletes old rows. Nothing here
-- touches the ledger's history, which is never pruned.

ALTER TABLE okit.ttfs_events DROP CONSTRAINT ttfs_events_ttfs_ms_check;
ALTER TABLE okit.ttfs_events ALTER COLUMN ttfs_ms TYPE numeric(12,3);
ALTER TABLE okit.ttfs_events
  ADD CONSTRAINT ttfs_events_ttfs_ms_check CHECK (ttfs_ms >= 0 AND ttfs_ms <= 3600000),
  ADD COLUMN run_id uuid,
  ADD COLUMN server_ms numeric(12,3) CHECK (server_ms >= 0 AND server_ms <= 3600000),
  ADD CONSTRAINT ttfs_events_kind_check CHECK (kind IN ('queued','started','phase','blocked','failed','succeeded','canceled','unavailable')),
  ADD CONSTRAINT ttfs_events_phase_check CHECK (phase IN ('resolve','fetch','restore','analyze','policy','report','unknown')),
  ADD CONSTRAINT ttfs_events_error_code_check CHECK (error_code ~ '^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$');

COMMENT ON COLUMN okit.ttfs_events.ttfs_ms IS 'client events: user action to first signal shown; server events (signal.cache_hit, signal.cold_start): time in the server';
COMMENT ON COLUMN okit.ttfs_events.server_ms IS 'the server''s part of a client''s first signal, as the answer''s Server-Timing header said';

-- Prune and report windows cut by time; the rollups group by UTC hour and day
-- (date_trunc with an explicit zone is immutable from Postgres 16 on, so there it can be
-- indexed and a view's `WHERE hour >= …` reaches the index; Postgres 14 and 15 mark it
-- stable and refuse such an index: there the ts index serves those windows).
CREATE INDEX ttfs_events_ts ON okit.ttfs_events (ts);
DO $$
BEGIN
  IF current_setting('server_version_num')::int >= 160000 THEN
    CREATE INDEX ttfs_events_hour ON okit.ttfs_events ((date_trunc('hour', ts, 'UTC')), surface);
    CREATE INDEX ttfs_events_day ON okit.ttfs_events ((date_trunc('day', ts, 'UTC')), tenant, surface);
  END IF;
END $$;

-- The targets a surface is held to (the TTFS design: P50 < 2 s, P95 < 5 s everywhere).
-- An operator may tighten or loosen them with an UPDATE; the views and `okit slo report` read them.
CREATE TABLE okit.ttfs_slo_targets (
  surface text PRIMARY KEY CHECK (surface IN ('ui', 'cli', 'ci')),
  p50_ms numeric(12,3) NOT NULL CHECK (p50_ms > 0),
  p95_ms numeric(12,3) NOT NULL CHECK (p95_ms >= p50_ms)
);
INSERT INTO okit.ttfs_slo_targets (surface, p50_ms, p95_ms) VALUES ('ui', 2000, 5000), ('cli', 2000, 5000), ('ci', 2000, 5000);

-- What a user waited: a first signal shown (signal.rendered) or given up on (signal.timeout).
-- Percentiles are over those; errors and the server's own rows are counted beside them.
-- No rolling window in the views (a view over now() cannot be tested or replayed): filter
-- on hour/day, and prune with `okit prune telemetry`.
CREATE VIEW okit.ttfs_hourly_summary AS
SELECT
  date_trunc('hour', e.ts, 'UTC') AS hour,
  e.tenant,
  e.surface,
  e.kind,
  count(*) FILTER (WHERE e.event_type IN ('signal.rendered', 'signal.timeout')) AS event_count,
  round(avg(e.ttfs_ms) FILTER (WHERE e.event_type IN ('signal.rendered', 'signal.timeout')), 3) AS avg_ms,
  round((percentile_cont(0.50) WITHIN GROUP (ORDER BY e.ttfs_ms) FILTER (WHERE e.event_type IN ('signal.rendered', 'signal.timeout')))::numeric, 3) AS p50_ms,
  round((percentile_cont(0.95) WITHIN GROUP (ORDER BY e.ttfs_ms) FILTER (WHERE e.event_type IN ('signal.rendered', 'signal.timeout')))::numeric, 3) AS p95_ms,
  round((percentile_cont(0.99) WITHIN GROUP (ORDER BY e.ttfs_ms) FILTER (WHERE e.event_type IN ('signal.rendered', 'signal.timeout')))::numeric, 3) AS p99_ms,
  min(e.ttfs_ms) FILTER (WHERE e.event_type IN ('signal.rendered', 'signal.timeout')) AS min_ms,
  max(e.ttfs_ms) FILTER (WHERE e.event_type IN ('signal.rendered', 'signal.timeout')) AS max_ms,
  count(*) FILTER (WHERE e.event_type IN ('signal.rendered', 'signal.timeout') AND e.ttfs_ms > t.p50_ms) AS over_p50_target,
  count(*) FILTER (WHERE e.event_type IN ('signal.rendered', 'signal.timeout') AND e.ttfs_ms > t.p95_ms) AS over_p95_target,
  count(*) FILTER (WHERE e.event_type = 'signal.timeout') AS timeout_count,
  count(*) FILTER (WHERE e.event_type = 'signal.error') AS error_count,
  round(avg(CASE WHEN e.cache_hit THEN 1 ELSE 0 END) FILTER (WHERE e.event_type = 'signal.rendered'), 4) AS cache_hit_rate,
  count(*) FILTER (WHERE e.event_type IN ('signal.cache_hit', 'signal.cold_start')) AS server_count,
  round((percentile_cont(0.95) WITHIN GROUP (ORDER BY e.ttfs_ms) FILTER (WHERE e.event_type IN ('signal.cache_hit', 'signal.cold_start')))::numeric, 3) AS server_p95_ms
FROM okit.ttfs_events e
JOIN okit.ttfs_slo_targets t ON t.surface = e.surface
GROUP BY date_trunc('hour', e.ts, 'UTC'), e.tenant, e.surface, e.kind;
COMMENT ON VIEW okit.ttfs_hourly_summary IS 'TTFS per UTC hour, tenant, surface and signal kind (kind is null for events that showed no signal)';

CREATE VIEW okit.ttfs_daily_summary AS
SELECT
  date_trunc('day', e.ts, 'UTC') AS day,
  e.tenant,
  e.surface,
  count(*) FILTER (WHERE e.event_type IN ('signal.rendered', 'signal.timeout')) AS event_count,
  round(avg(e.ttfs_ms) FILTER (WHERE e.event_type IN ('signal.rendered', 'signal.timeout')), 3) AS avg_ms,
  round((percentile_cont(0.50) WITHIN GROUP (ORDER BY e.ttfs_ms) FILTER (WHERE e.event_type IN ('signal.rendered', 'signal.timeout')))::numeric, 3) AS p50_ms,
  round((percentile_cont(0.95) WITHIN GROUP (ORDER BY e.ttfs_ms) FILTER (WHERE e.event_type IN ('signal.rendered', 'signal.timeout')))::numeric, 3) AS p95_ms,
  round((percentile_cont(0.99) WITHIN GROUP (ORDER BY e.ttfs_ms) FILTER (WHERE e.event_type IN ('signal.rendered', 'signal.timeout')))::numeric, 3) AS p99_ms,
  round(avg(CASE WHEN e.cache_hit THEN 1 ELSE 0 END) FILTER (WHERE e.event_type = 'signal.rendered'), 4) AS cache_hit_rate,
  count(*) FILTER (WHERE e.event_type = 'signal.timeout') AS timeout_count,
  count(*) FILTER (WHERE e.event_type = 'signal.error') AS error_count
FROM okit.ttfs_events e
GROUP BY date_trunc('day', e.ts, 'UTC'), e.tenant, e.surface;
COMMENT ON VIEW okit.ttfs_daily_summary IS 'TTFS per UTC day, tenant and surface, for long-term trends';

-- The hours in which a tenant's surface missed a target: its p50 or p95 over the hour above
-- the surface's target. Compliance is the share of measured events within each target.
CREATE VIEW okit.ttfs_slo_breaches AS
SELECT
  date_trunc('hour', e.ts, 'UTC') AS hour,
  e.tenant,
  e.surface,
  count(*) AS total_signals,
  round((percentile_cont(0.50) WITHIN GROUP (ORDER BY e.ttfs_ms))::numeric, 3) AS p50_ms,
  round((percentile_cont(0.95) WITHIN GROUP (ORDER BY e.ttfs_ms))::numeric, 3) AS p95_ms,
  t.p50_ms AS p50_target_ms,
  t.p95_ms AS p95_target_ms,
  count(*) FILTER (WHERE e.ttfs_ms > t.p50_ms) AS p50_breaches,
  count(*) FILTER (WHERE e.ttfs_ms > t.p95_ms) AS p95_breaches,
  round(100.0 * count(*) FILTER (WHERE e.ttfs_ms <= t.p50_ms) / count(*), 2) AS p50_compliance_pct,
  round(100.0 * count(*) FILTER (WHERE e.ttfs_ms <= t.p95_ms) / count(*), 2) AS p95_compliance_pct
FROM okit.ttfs_events e
JOIN okit.ttfs_slo_targets t ON t.surface = e.surface
WHERE e.event_type IN ('signal.rendered', 'signal.timeout')
GROUP BY date_trunc('hour', e.ts, 'UTC'), e.tenant, e.surface, t.p50_ms, t.p95_ms
HAVING percentile_cont(0.50) WITHIN GROUP (ORDER BY e.ttfs_ms) > t.p50_ms
    OR percentile_cont(0.95) WITHIN GROUP (ORDER BY e.ttfs_ms) > t.p95_ms;
COMMENT ON VIEW okit.ttfs_slo_breaches IS 'UTC hours in which a tenant''s surface had its TTFS p50 or p95 above the target';

-- The /metrics collector counts upstream throttles per host from the ledger's own events.
CREATE INDEX throttle_events_upstream ON okit.throttle_events (tenant, host) WHERE event = 'upstream_throttled';

-- A `metrics` token may scrape /metrics and nothing else (it sees every tenant's figures, so
-- no tenant's read/worker/admin token includes it).
ALTER TABLE okit.api_tokens DROP CONSTRAINT api_tokens_scope_check;
ALTER TABLE okit.api_tokens ADD CONSTRAINT api_tokens_scope_check CHECK (scope IN ('read', 'worker', 'admin', 'metrics'));
