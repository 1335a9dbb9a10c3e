-- Multi-factor authentication: TOTP, recovery codes, the pending second step of a login, and the
-- factors each login was made with.

-- One TOTP authenticator per user. The secret is sealed with AES-256-GCM (MFA_ENCRYPTION_KEY,
-- src/lib/secret-box.ts), never stored in clear. confirmed_at null: set up, not active yet.
-- last_time_step: the newest 30 s step a code was accepted for; a code of it or an earlier step is
-- refused, so no code works twice (a conditional UPDATE moves it forward, race-safe).
CREATE TABLE user_totp (
  user_id          uuid PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
  secret_sealed    text NOT NULL CHECK (length(secret_sealed) <= 512),
  confirmed_at     timestamptz(3),
  last_time_step   bigint,
  created_at       timestamptz(3) NOT NULL DEFAULT now()
);

-- Single-use recovery codes: only their keyed hash (HMAC-SHA-256) is stored.
CREATE TABLE user_recovery_codes (
  id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  code_hash  text NOT NULL,
  used_at    timestamptz(3),
  created_at timestamptz(3) NOT NULL DEFAULT now(),
  UNIQUE (user_id, code_hash)
);

-- A login whose first factor passed and whose second is awaited: the mfaToken's SHA-256, spent
-- once (a conditional UPDATE) and shared by every instance.
CREATE TABLE mfa_challenges (
  id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  token_hash  text NOT NULL UNIQUE,
  amr         text[] NOT NULL,
  -- the first factor's auth.login method (password, oidc:<name>), for the row the second step writes
  method      text NOT NULL,
  created_at  timestamptz(3) NOT NULL DEFAULT now(),
  expires_at  timestamptz(3) NOT NULL,
  spent_at    timestamptz(3)
);
CREATE INDEX mfa_challenges_user_id_idx ON mfa_challenges (user_id);
CREATE INDEX mfa_challenges_expires_at_idx ON mfa_challenges (expires_at);

-- The authentication methods of a login (the access token's amr claim), kept by its refreshes.
-- Every login before this migration was a password login.
ALTER TABLE user_sessions ADD COLUMN amr text[] NOT NULL DEFAULT '{pwd}';
