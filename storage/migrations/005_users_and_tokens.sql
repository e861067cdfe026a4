-- dagd schema, version 5: API users and long-lived API tokens (scheduler/auth.hpp).
--
-- Passwords are stored as Argon2id encoded hashes; an API token only as the SHA-256 of its
-- secret (the secret is 32 random bytes, so a fast hash is enough), shown once when created.

CREATE TABLE dagd_user (
  name          text PRIMARY KEY CHECK (length(name) BETWEEN 1 AND 64),
  role          text NOT NULL CHECK (role IN ('viewer', 'user', 'op', 'admin')),
  password_hash text NOT NULL,
  created_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_token (
  name         text PRIMARY KEY CHECK (length(name) BETWEEN 1 AND 64),
  role         text NOT NULL CHECK (role IN ('viewer', 'user', 'op', 'admin')),
  token_hash   text NOT NULL UNIQUE CHECK (token_hash ~ '^[0-9a-f]{64}$'),
  created_at   timestamptz NOT NULL DEFAULT now(),
  expires_at   timestamptz,
  last_used_at timestamptz
);
