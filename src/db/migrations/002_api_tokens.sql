-- Bearer tokens for the HTTP API. Only the sha256 of a token is stored; the token itself is
-- printed once by `okit tokens create`. Scopes nest: read < worker < admin.
CREATE TABLE okit.api_tokens (
  id uuid PRIMARY KEY,
  tenant okit.tenant_id NOT NULL,
  scope text NOT NULL CHECK (scope IN ('read', 'worker', 'admin')),
  token_sha256 text NOT NULL UNIQUE CHECK (token_sha256 ~ '^[0-9a-f]{64}$'),
  label text,
  created_at timestamptz NOT NULL,
  revoked_at timestamptz
);
CREATE INDEX api_tokens_tenant ON okit.api_tokens (tenant);
