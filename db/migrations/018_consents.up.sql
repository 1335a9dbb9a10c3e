-- Consents (CONTRACT.md, "Privacy and retention"): one row per change, never updated. A user's
-- current consent to a purpose is its latest row (highest seq) for that purpose; the rows are the
-- history the export gives. The purposes are configuration (CONSENT_PURPOSES), not a constraint
-- here: a purpose dropped from the configuration keeps its history.
CREATE TABLE user_consents (
  seq        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  purpose    text NOT NULL CHECK (purpose ~ '^[a-z0-9][a-z0-9_-]{0,49}$'),
  granted    boolean NOT NULL,
  version    text NOT NULL CHECK (length(version) BETWEEN 1 AND 50),
  created_at timestamptz(3) NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX user_consents_user_purpose_idx ON user_consents (user_id, purpose, seq DESC);

-- Append-only, as the audit trail: the one exception is erasure, which deletes a user's rows in a
-- transaction that sets app.consent_erase = 'on' (src/repositories/consents.ts).
CREATE FUNCTION user_consents_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' AND current_setting('app.consent_erase', true) = 'on' THEN
    RETURN OLD;
  END IF;
  RAISE EXCEPTION 'user_consents is append-only' USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER user_consents_append_only
  BEFORE UPDATE OR DELETE ON user_consents
  FOR EACH ROW EXECUTE FUNCTION user_consents_append_only();
CREATE TRIGGER user_consents_no_truncate
  BEFORE TRUNCATE ON user_consents
  FOR EACH STATEMENT EXECUTE FUNCTION user_consents_append_only();

-- user.viewed (AUDIT_DATA_ACCESS) is an audit row only, not an event: a read would otherwise copy
-- the viewed user's whole record into events, to every webhook and stream that takes all events,
-- once per read (the read path's flood at about twice the database time per read in the bench).
-- The trigger's WHEN skips the function entirely for those rows; every other action is unchanged.
DROP TRIGGER user_audit_log_to_event ON user_audit_log;
CREATE TRIGGER user_audit_log_to_event
  AFTER INSERT ON user_audit_log
  FOR EACH ROW WHEN (NEW.action <> 'user.viewed') EXECUTE FUNCTION user_audit_log_to_event();
