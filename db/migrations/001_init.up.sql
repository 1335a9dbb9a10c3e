-- Initial schema: users, profiles, RBAC, sessions and tokens, audit trail, email outbox.
CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE TABLE users (
  id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  email              text NOT NULL CHECK (email = lower(email) AND length(email) BETWEEN 3 AND 254),
  password_hash      text NOT NULL,
  first_name         text NOT NULL CHECK (length(first_name) BETWEEN 1 AND 100),
  last_name          text NOT NULL CHECK (length(last_name) BETWEEN 1 AND 100),
  status             text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended', 'pending')),
  email_verified     boolean NOT NULL DEFAULT false,
  last_login_at      timestamptz(3),
  created_at         timestamptz(3) NOT NULL DEFAULT now(),
  updated_at         timestamptz(3) NOT NULL DEFAULT now(),
  deleted_at         timestamptz(3),
  erased_at          timestamptz(3)
);
CREATE UNIQUE INDEX users_email_live_key ON users (lower(email)) WHERE deleted_at IS NULL;
CREATE INDEX users_created_at_id_idx ON users (created_at, id);
CREATE INDEX users_email_id_idx ON users (email, id);
CREATE INDEX users_last_name_id_idx ON users (last_name, id);
CREATE INDEX users_status_idx ON users (status);
CREATE INDEX users_email_verified_idx ON users (email_verified);
CREATE INDEX users_deleted_at_idx ON users (deleted_at);
CREATE INDEX users_search_trgm_idx ON users USING gin ((email || ' ' || first_name || ' ' || last_name) gin_trgm_ops);

CREATE TABLE user_profiles (
  user_id    uuid PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
  bio        text CHECK (length(bio) <= 2000),
  avatar_url text CHECK (length(avatar_url) <= 2048),
  phone      text CHECK (length(phone) <= 32),
  locale     text CHECK (length(locale) <= 35),
  timezone   text CHECK (length(timezone) <= 64),
  created_at timestamptz(3) NOT NULL DEFAULT now(),
  updated_at timestamptz(3) NOT NULL DEFAULT now()
);

CREATE TABLE roles (
  id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  name        text NOT NULL UNIQUE CHECK (name ~ '^[a-z][a-z0-9_-]{1,49}$'),
  description text NOT NULL DEFAULT '' CHECK (length(description) <= 500),
  permissions text[] NOT NULL DEFAULT '{}'
    CHECK (permissions <@ ARRAY['users:read', 'users:write', 'users:delete', 'roles:manage', 'audit:read']::text[]),
  built_in    boolean NOT NULL DEFAULT false,
  created_at  timestamptz(3) NOT NULL DEFAULT now(),
  updated_at  timestamptz(3) NOT NULL DEFAULT now()
);

INSERT INTO roles (name, description, permissions, built_in) VALUES
  ('admin', 'Every permission', ARRAY['users:read', 'users:write', 'users:delete', 'roles:manage', 'audit:read'], true),
  ('user', 'Access to its own account only', '{}', true);

CREATE TABLE user_roles (
  user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  role_id    uuid NOT NULL REFERENCES roles (id) ON DELETE RESTRICT,
  created_at timestamptz(3) NOT NULL DEFAULT now(),
  PRIMARY KEY (user_id, role_id)
);
CREATE INDEX user_roles_role_id_idx ON user_roles (role_id);

-- One row per login: the family that its rotating refresh tokens belong to.
CREATE TABLE user_sessions (
  id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id      uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  user_agent   text,
  ip           text,
  created_at   timestamptz(3) NOT NULL DEFAULT now(),
  last_used_at timestamptz(3) NOT NULL DEFAULT now(),
  expires_at   timestamptz(3) NOT NULL,
  revoked_at   timestamptz(3)
);
CREATE INDEX user_sessions_user_id_idx ON user_sessions (user_id, created_at);

CREATE TABLE refresh_tokens (
  id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  session_id uuid NOT NULL REFERENCES user_sessions (id) ON DELETE CASCADE,
  user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  token_hash text NOT NULL UNIQUE,
  created_at timestamptz(3) NOT NULL DEFAULT now(),
  expires_at timestamptz(3) NOT NULL,
  spent_at   timestamptz(3)
);
CREATE INDEX refresh_tokens_session_id_idx ON refresh_tokens (session_id);

CREATE TABLE password_reset_tokens (
  id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  token_hash text NOT NULL UNIQUE,
  created_at timestamptz(3) NOT NULL DEFAULT now(),
  expires_at timestamptz(3) NOT NULL,
  used_at    timestamptz(3)
);
CREATE INDEX password_reset_tokens_user_id_idx ON password_reset_tokens (user_id);

CREATE TABLE email_verification_tokens (
  id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  email      text NOT NULL,
  token_hash text NOT NULL UNIQUE,
  created_at timestamptz(3) NOT NULL DEFAULT now(),
  expires_at timestamptz(3) NOT NULL,
  used_at    timestamptz(3)
);
CREATE INDEX email_verification_tokens_user_id_idx ON email_verification_tokens (user_id);

CREATE TABLE user_audit_log (
  id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  -- insertion order: rows written in the same millisecond still page in a stable, meaningful order
  seq        bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
  action     text NOT NULL CHECK (action ~ '^[a-z_]+\.[a-z_]+$'),
  actor_id   uuid,
  user_id    uuid,
  changes    jsonb,
  ip         text,
  user_agent text,
  request_id text,
  created_at timestamptz(3) NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX user_audit_log_created_at_idx ON user_audit_log (created_at);
CREATE INDEX user_audit_log_user_id_idx ON user_audit_log (user_id, seq DESC);
CREATE INDEX user_audit_log_actor_id_idx ON user_audit_log (actor_id, seq DESC);
CREATE INDEX user_audit_log_action_idx ON user_audit_log (action, seq DESC);

-- The audit trail is append-only. The one sanctioned exception is erasure (GDPR), which
-- sets app.audit_erase = 'on' inside its own transaction to scrub PII from a user's rows.
CREATE FUNCTION user_audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'UPDATE' AND current_setting('app.audit_erase', true) = 'on' THEN
    RETURN NEW;
  END IF;
  RAISE EXCEPTION 'user_audit_log is append-only' USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER user_audit_log_append_only
  BEFORE UPDATE OR DELETE ON user_audit_log
  FOR EACH ROW EXECUTE FUNCTION user_audit_log_append_only();
CREATE TRIGGER user_audit_log_no_truncate
  BEFORE TRUNCATE ON user_audit_log
  FOR EACH STATEMENT EXECUTE FUNCTION user_audit_log_append_only();

CREATE TABLE email_outbox (
  id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  to_address text NOT NULL,
  template   text NOT NULL CHECK (template IN ('verify_email', 'password_reset')),
  payload    jsonb NOT NULL DEFAULT '{}',
  created_at timestamptz(3) NOT NULL DEFAULT now(),
  sent_at    timestamptz(3),
  attempts   integer NOT NULL DEFAULT 0,
  last_error text
);
CREATE INDEX email_outbox_pending_idx ON email_outbox (created_at) WHERE sent_at IS NULL;
