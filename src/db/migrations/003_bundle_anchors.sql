-- Audit bundles loaded by `okit replay --into` (src/bundle/import.ts).
-- A loaded bundle holds only its window of the ledger. What the exporter's chain check needs
-- from outside the window is kept here by hash: a continued job's row n-1 (before from_pos)
-- and a job's latest row when it lies beyond to_pos. A live ledger never has anchors.
CREATE TABLE okit.bundle_anchors (
  tenant okit.tenant_id NOT NULL,
  job_id uuid NOT NULL,
  n integer NOT NULL CHECK (n >= 1),
  hash text NOT NULL CHECK (hash ~ '^[0-9a-f]{64}$'),
  PRIMARY KEY (job_id, n)
);

-- One row per bundle loaded: its manifest, for the auditor's SQL.
CREATE TABLE okit.bundle_imports (
  manifest_sha256 text PRIMARY KEY CHECK (manifest_sha256 ~ '^[0-9a-f]{64}$'),
  tenant okit.tenant_id NOT NULL,
  from_pos bigint NOT NULL,
  to_pos bigint NOT NULL,
  manifest jsonb NOT NULL
);
