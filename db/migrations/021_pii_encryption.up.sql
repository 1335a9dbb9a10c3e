-- Personal data encrypted at rest (PII_ENCRYPTION_KEYS, CONTRACT.md "Privacy and retention").
-- The application seals profile phone and bio, and the ip and user agent of logins and audit rows,
-- as `pii1.<kid>.<iv>.<ciphertext>.<tag>` text in the columns that held them, so every copy the
-- database makes (the users read model of 003, the event snapshots of 013) is a sealed copy.

-- The key ids that have sealed data here, each with a check value (an HMAC under a key derived
-- from that key), so a start with a key missing, or a different key under a known id, is refused
-- before it could write anything or fail on a read.
CREATE TABLE pii_keys (
  kid         text PRIMARY KEY CHECK (kid ~ '^[A-Za-z0-9_-]{1,32}$'),
  check_value text NOT NULL,
  created_at  timestamptz(3) NOT NULL DEFAULT now()
);

-- A sealed value is longer than the clear one the API accepts (phone 32, bio 2000 characters,
-- still checked there): these bounds only keep a row from growing without limit.
ALTER TABLE user_profiles DROP CONSTRAINT user_profiles_phone_check;
ALTER TABLE user_profiles DROP CONSTRAINT user_profiles_bio_check;
ALTER TABLE user_profiles ADD CONSTRAINT user_profiles_phone_check CHECK (length(phone) <= 256);
ALTER TABLE user_profiles ADD CONSTRAINT user_profiles_bio_check CHECK (length(bio) <= 12000);

-- The blind index of the phone (HMAC-SHA-256 of its digits), set only when the phone is sealed:
-- `phone:` search terms then match the whole number exactly through it.
ALTER TABLE user_profiles ADD COLUMN phone_index text;
CREATE INDEX user_profiles_phone_index_idx ON user_profiles (phone_index) WHERE phone_index IS NOT NULL;

-- The audit trail stays append-only; a second sanctioned exception beside erasure: `npm run
-- pii:rotate` sets app.pii_rotate = 'on' in its own transactions to reseal the ip, user agent and
-- changes of rows, and may change nothing else.
CREATE OR REPLACE FUNCTION user_audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'UPDATE' AND current_setting('app.audit_erase', true) = 'on' THEN
    RETURN NEW;
  END IF;
  IF TG_OP = 'UPDATE' AND current_setting('app.pii_rotate', true) = 'on'
    AND (NEW.id, NEW.seq, NEW.action, NEW.actor_id, NEW.user_id, NEW.request_id, NEW.created_at)
      IS NOT DISTINCT FROM (OLD.id, OLD.seq, OLD.action, OLD.actor_id, OLD.user_id, OLD.request_id, OLD.created_at) THEN
    RETURN NEW;
  END IF;
  RAISE EXCEPTION 'user_audit_log is append-only' USING ERRCODE = 'insufficient_privilege';
END
$$;
