-- Sign-in with external OpenID Connect providers: linked identities, the browser flows in
-- progress and the one-time codes a callback hands to the client. A user created through a
-- provider has no password, so password_hash becomes nullable.
ALTER TABLE users ALTER COLUMN password_hash DROP NOT NULL;

-- One row per (provider, subject) linked to a user; the provider's email as it was at link time.
CREATE TABLE user_identities (
  id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  provider   text NOT NULL CHECK (length(provider) BETWEEN 1 AND 50),
  subject    text NOT NULL CHECK (length(subject) BETWEEN 1 AND 255),
  email      text CHECK (length(email) <= 254),
  created_at timestamptz(3) NOT NULL DEFAULT now(),
  UNIQUE (provider, subject)
);
CREATE INDEX user_identities_user_id_idx ON user_identities (user_id);

-- An authorization request sent to a provider and not yet come back, keyed by the hash of its
-- state. browser_hash is the hash of the random value in the browser's cookie: the callback must
-- bring both. Spent by a DELETE ... RETURNING, so a state works once even when callbacks race.
CREATE TABLE oidc_auth_requests (
  state_hash    text PRIMARY KEY,
  browser_hash  text NOT NULL,
  provider      text NOT NULL,
  nonce         text NOT NULL,
  code_verifier text NOT NULL,
  redirect_uri  text NOT NULL,
  created_at    timestamptz(3) NOT NULL DEFAULT now(),
  expires_at    timestamptz(3) NOT NULL
);
CREATE INDEX oidc_auth_requests_expires_at_idx ON oidc_auth_requests (expires_at);

-- The single-use code a successful callback puts in the redirect, exchanged for the login answer.
CREATE TABLE oidc_login_codes (
  code_hash  text PRIMARY KEY,
  user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  provider   text NOT NULL,
  created_at timestamptz(3) NOT NULL DEFAULT now(),
  expires_at timestamptz(3) NOT NULL
);
CREATE INDEX oidc_login_codes_expires_at_idx ON oidc_login_codes (expires_at);
