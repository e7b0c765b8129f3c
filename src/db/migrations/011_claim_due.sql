-- Claim waiters (POST /workers/claim with `wait`) time their wake-up by the first job of a type
-- that is queued or throttled but not yet due (a retry's backoff, a throttle's wait, a future
-- not_before): `ORDER BY not_before LIMIT 1` per type walks this index and stops at once
-- (jobs_claim_idx leads with priority, so the same question there scans every queued job of the type).
CREATE INDEX jobs_due_idx ON okit.jobs (tenant, type, not_before) WHERE state IN ('queued', 'throttled');
