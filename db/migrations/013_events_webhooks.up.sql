-- Events and webhooks (CONTRACT.md, "Webhooks and real-time events").

-- Every audit row is also an event, written by a trigger on user_audit_log, so every writer (the
-- services' insertAudit and the one-statement login of sessions.startLogin alike) makes its event
-- in the same transaction as its change, and a rolled-back change leaves none.
-- id: the audit row's id. seq: the position, for ordering and resuming (Last-Event-ID): an identity
-- assigned at insert, so two transactions committing in the other order than they inserted make
-- their events visible out of seq order (the NOTIFY below arrives in commit order).
-- data is the event's data as sent: { userId, actorId, changes, user? }, user as the API returns
-- it, snapshotted at write time (the user as the change left it), absent when there is no such
-- user or it is erased. Audit changes never hold a password, hash or token, and the ip, user
-- agent and request id of the audit row are not copied.
CREATE TABLE events (
  seq        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  id         uuid NOT NULL UNIQUE,
  type       text NOT NULL,
  user_id    uuid,
  actor_id   uuid,
  data       jsonb NOT NULL,
  created_at timestamptz(3) NOT NULL
);
CREATE INDEX events_created_at_idx ON events (created_at);
CREATE INDEX events_user_id_idx ON events (user_id, seq);

-- ISO-8601 UTC with milliseconds, as the API writes timestamps.
CREATE FUNCTION iso_utc(ts timestamptz) RETURNS text LANGUAGE sql IMMUTABLE AS $$
  SELECT to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
$$;

-- A webhook: its secret (and, for a while after a rotation, the previous one, which still signs
-- alongside the new) is sealed with AES-256-GCM by the application, never stored in clear.
-- consecutive_failures and circuit_open_until are the circuit breaker (src/services/webhooks.ts).
CREATE TABLE webhooks (
  id                         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  url                        text NOT NULL CHECK (length(url) <= 2048),
  events                     text[] NOT NULL CHECK (cardinality(events) BETWEEN 1 AND 100),
  description                text CHECK (length(description) <= 500),
  active                     boolean NOT NULL DEFAULT true,
  secret_sealed              text NOT NULL,
  previous_secret_sealed     text,
  previous_secret_expires_at timestamptz(3),
  consecutive_failures       integer NOT NULL DEFAULT 0,
  circuit_open_until         timestamptz(3),
  created_by                 uuid REFERENCES users (id) ON DELETE SET NULL,
  created_at                 timestamptz(3) NOT NULL DEFAULT now(),
  updated_at                 timestamptz(3) NOT NULL DEFAULT now()
);
CREATE INDEX webhooks_active_idx ON webhooks USING gin (events) WHERE active;

-- One delivery per event and webhook (the unique key: exactly once, whichever instance writes it),
-- written by the same trigger as the event, so in the change's transaction. status pending until a
-- 2xx (succeeded) or the last attempt (failed). job_queued: a job for its next attempt exists
-- (the sweep of src/services/webhooks.ts queues one for each due delivery without).
CREATE TABLE webhook_deliveries (
  seq             bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
  id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  webhook_id      uuid NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
  event_id        uuid NOT NULL,
  event_type      text NOT NULL,
  status          text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'succeeded', 'failed')),
  attempts        integer NOT NULL DEFAULT 0,
  response_status integer,
  last_error      text CHECK (length(last_error) <= 500),
  last_attempt_at timestamptz(3),
  next_attempt_at timestamptz(3) DEFAULT now(),
  job_queued      boolean NOT NULL DEFAULT false,
  created_at      timestamptz(3) NOT NULL DEFAULT now(),
  UNIQUE (webhook_id, event_id)
);
CREATE INDEX webhook_deliveries_webhook_idx ON webhook_deliveries (webhook_id, seq DESC);
CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (next_attempt_at) WHERE status = 'pending' AND NOT job_queued;
CREATE INDEX webhook_deliveries_finished_idx ON webhook_deliveries (created_at) WHERE status <> 'pending';

CREATE FUNCTION user_audit_log_to_event() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  snapshot jsonb;
  event_seq bigint;
  deliveries integer;
BEGIN
  IF NEW.user_id IS NOT NULL THEN
    SELECT jsonb_build_object(
      'id', u.id, 'email', u.email, 'firstName', u.first_name, 'lastName', u.last_name, 'status', u.status,
      'emailVerified', u.email_verified, 'roles', to_jsonb(u.role_names), 'profile', u.profile,
      'lastLoginAt', iso_utc(u.last_login_at), 'createdAt', iso_utc(u.created_at), 'updatedAt', iso_utc(u.updated_at),
      'deletedAt', iso_utc(u.deleted_at))
    INTO snapshot FROM users u WHERE u.id = NEW.user_id AND u.erased_at IS NULL;
  END IF;
  -- An erasure leaves nothing personal in the events about the user either (as in the audit trail).
  IF NEW.action = 'user.erased' THEN
    UPDATE events SET data = jsonb_build_object('userId', user_id, 'actorId', actor_id, 'changes', NULL)
    WHERE user_id = NEW.user_id;
  END IF;
  INSERT INTO events (id, type, user_id, actor_id, data, created_at)
  VALUES (NEW.id, NEW.action, NEW.user_id, NEW.actor_id,
    jsonb_build_object('userId', NEW.user_id, 'actorId', NEW.actor_id, 'changes', NEW.changes)
      || CASE WHEN snapshot IS NULL THEN '{}'::jsonb ELSE jsonb_build_object('user', snapshot) END,
    NEW.created_at)
  RETURNING seq INTO event_seq;
  PERFORM pg_notify('events', json_build_object('id', NEW.id, 'seq', event_seq, 'type', NEW.action,
    'userId', NEW.user_id, 'actorId', NEW.actor_id)::text);

  INSERT INTO webhook_deliveries (webhook_id, event_id, event_type)
  SELECT w.id, NEW.id, NEW.action FROM webhooks w WHERE w.active AND w.events && ARRAY[NEW.action, '*'];
  GET DIAGNOSTICS deliveries = ROW_COUNT;
  IF deliveries > 0 THEN
    PERFORM pg_notify('webhook_deliveries', '');
  END IF;
  RETURN NULL;
END
$$;
CREATE TRIGGER user_audit_log_to_event
  AFTER INSERT ON user_audit_log
  FOR EACH ROW EXECUTE FUNCTION user_audit_log_to_event();

-- The permission to manage webhooks (CONTRACT.md, "Conventions, added"), for admin, which has every
-- permission. Migration 011 of another branch may have added it to the catalogue already; then
-- the check constraint is left as that migration made it.
DO $$
BEGIN
  IF position('webhooks:manage' IN (SELECT pg_get_constraintdef(oid) FROM pg_constraint
      WHERE conrelid = 'roles'::regclass AND conname = 'roles_permissions_check')) = 0 THEN
    ALTER TABLE roles DROP CONSTRAINT roles_permissions_check;
    ALTER TABLE roles ADD CONSTRAINT roles_permissions_check CHECK (permissions <@ ARRAY[
      'users:read', 'users:write', 'users:delete', 'roles:manage', 'audit:read', 'webhooks:manage']::text[]);
  END IF;
END
$$;
UPDATE roles SET permissions = array_append(permissions, 'webhooks:manage')
WHERE name = 'admin' AND built_in AND NOT ('webhooks:manage' = ANY (permissions));
