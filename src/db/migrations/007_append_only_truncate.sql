-- okit.throttle_events is append-only like okit.job_history (OFFLINE.md §9, docs/ledger.md),
-- but 001 refused only UPDATE and DELETE on it: a TRUNCATE emptied it, leaving the tenant's
-- ledger positions with gaps. Refuse TRUNCATE too. okit.bundle_anchors (003) holds the hashes
-- a loaded bundle's chains rest on: as append-only as the history it stands for.
CREATE TRIGGER throttle_events_no_truncate BEFORE TRUNCATE ON okit.throttle_events
  FOR EACH STATEMENT EXECUTE FUNCTION okit.refuse_change();
CREATE TRIGGER bundle_anchors_append_only BEFORE UPDATE OR DELETE ON okit.bundle_anchors
  FOR EACH ROW EXECUTE FUNCTION okit.refuse_change();
CREATE TRIGGER bundle_anchors_no_truncate BEFORE TRUNCATE ON okit.bundle_anchors
  FOR EACH STATEMENT EXECUTE FUNCTION okit.refuse_change();
