-- Issue 14: the durations trigger of migration 012, once per INSERT statement instead of once per
-- succeeded row. The writer inserts a batch's history rows in one statement, so a batch of k
-- successes of a type now appends k durations in one upsert (one lock, one array rewrite), not k.
-- Same result, row for row: each success's duration (this attempt's claim → success, 0 if the
-- clock went backwards), appended oldest first (by pos), the last 50 kept.
DROP TRIGGER job_history_type_duration ON okit.job_history;
DROP FUNCTION okit.record_type_duration();

CREATE FUNCTION okit.record_type_durations() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  WITH s AS (
    SELECT n.tenant, j.type, n.at, n.pos,
           greatest(0, (extract(epoch FROM n.at - c.at) * 1000000)::bigint) AS d
      FROM new_rows n
      JOIN okit.jobs j ON j.id = n.job_id
      -- This attempt's claim: a backward walk of the job's own rows (UNIQUE (job_id, n)).
      JOIN LATERAL (SELECT h.at FROM okit.job_history h
                     WHERE h.job_id = n.job_id AND h.n < n.n AND h.event = 'claimed'
                     ORDER BY h.n DESC LIMIT 1) c ON true
     WHERE n.event = 'succeeded'
  ), g AS (
    SELECT tenant, type, array_agg(d ORDER BY pos) AS ds, max(at) AS at FROM s GROUP BY tenant, type
  )
  INSERT INTO okit.type_durations AS t (tenant, type, durations_us, updated_at)
  SELECT tenant, type, ds[greatest(1, cardinality(ds) - 49):], at FROM g
  ON CONFLICT (tenant, type) DO UPDATE
    SET durations_us = (t.durations_us || EXCLUDED.durations_us)[greatest(1, cardinality(t.durations_us) + cardinality(EXCLUDED.durations_us) - 49):],
        updated_at = greatest(t.updated_at, EXCLUDED.updated_at);
  RETURN NULL;
END $$;

CREATE TRIGGER job_history_type_durations AFTER INSERT ON okit.job_history
  REFERENCING NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION okit.record_type_durations();
