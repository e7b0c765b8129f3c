-- Browser sign-in for the console (issue 16). Reserved number 016 in the lead's plan: renumber
-- to follow main's last migration when this lands (numbering must stay gap-free).
--
-- One-time sign-in links printed by `okit console-link`: only the code's sha256 is stored; a
-- code is used at most once (used_at is set by one atomic UPDATE) and only before expires_at.
CREATE TABLE okit.console_links (
  id uuid PRIMARY KEY,
  tenant okit.tenant_id NOT NULL,
  scope text NOT NULL CHECK (scope IN ('read', 'admin')),
  code_sha256 text NOT NULL UNIQUE CHECK (code_sha256 ~ '^[0-9a-f]{64}$'),
  created_at timestamptz NOT NULL,
  expires_at timestamptz NOT NULL CHECK (expires_at > created_at),
  used_at timestamptz
);

-- Server-side console sessions behind the okit_session cookie. Only the sha256 of the cookie
-- value is stored. A session comes from a bearer token (token_id: revoking the token ends it)
-- or from a one-time link (link_id). It ends at expires_at, or at logout (revoked_at).
CREATE TABLE okit.console_sessions (
  id uuid PRIMARY KEY,
  session_sha256 text NOT NULL UNIQUE CHECK (session_sha256 ~ '^[0-9a-f]{64}$'),
  tenant okit.tenant_id NOT NULL,
  scope text NOT NULL CHECK (scope IN ('read', 'admin')),
  token_id uuid REFERENCES okit.api_tokens(id),
  link_id uuid REFERENCES okit.console_links(id),
  csrf_token text NOT NULL CHECK (length(csrf_token) >= 32),
  created_at timestamptz NOT NULL,
  expires_at timestamptz NOT NULL CHECK (expires_at > created_at),
  revoked_at timestamptz,
  CHECK ((token_id IS NULL) <> (link_id IS NULL))
);
CREATE INDEX console_sessions_token ON okit.console_sessions (token_id) WHERE token_id IS NOT NULL;
