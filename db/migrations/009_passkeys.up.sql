-- WebAuthn credentials (passkeys). The public key is the COSE key the authenticator registered,
-- as bytes; credential_id is the authenticator's id in base64url, as WebAuthn responses carry it.
-- sign_count is the last signature counter seen: one that does not increase is a cloned key.
CREATE TABLE user_passkeys (
  id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id       uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  credential_id text NOT NULL CHECK (credential_id ~ '^[A-Za-z0-9_-]+$' AND length(credential_id) <= 1366),
  public_key    bytea NOT NULL,
  sign_count    bigint NOT NULL DEFAULT 0 CHECK (sign_count >= 0),
  transports    text[] NOT NULL DEFAULT '{}',
  name          text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
  device_type   text NOT NULL CHECK (device_type IN ('singleDevice', 'multiDevice')),
  backed_up     boolean NOT NULL DEFAULT false,
  created_at    timestamptz NOT NULL DEFAULT now(),
  last_used_at  timestamptz
);
CREATE UNIQUE INDEX user_passkeys_credential_id_key ON user_passkeys (credential_id);
CREATE INDEX user_passkeys_user_id_idx ON user_passkeys (user_id, created_at);

-- Outstanding WebAuthn challenges, in the database so that any instance can verify the answer.
-- A challenge is spent by a conditional DELETE ... RETURNING, so it is accepted once even when two
-- requests race. user_id: the user registering, or the user a login is bound to (null: any
-- discoverable credential).
CREATE TABLE webauthn_challenges (
  id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  purpose    text NOT NULL CHECK (purpose IN ('register', 'login', 'mfa')),
  user_id    uuid REFERENCES users (id) ON DELETE CASCADE,
  challenge  text NOT NULL CHECK (challenge ~ '^[A-Za-z0-9_-]{16,128}$'),
  expires_at timestamptz NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  CHECK (purpose = 'login' OR user_id IS NOT NULL)
);
CREATE INDEX webauthn_challenges_user_id_idx ON webauthn_challenges (user_id, purpose);
CREATE INDEX webauthn_challenges_expires_at_idx ON webauthn_challenges (expires_at);
