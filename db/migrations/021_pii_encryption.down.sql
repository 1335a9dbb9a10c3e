-- Down only on clear data: sealed values longer than the old bounds make the checks below fail
-- (open them first: configure the keys, and put the old constraint back by hand after).
CREATE OR REPLACE FUNCTION user_audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'UPDATE' AND current_setting('app.audit_erase', true) = 'on' THEN
    RETURN NEW;
  END IF;
  RAISE EXCEPTION 'user_audit_log is append-only' USING ERRCODE = 'insufficient_privilege';
END
$$;
DROP INDEX user_profiles_phone_index_idx;
ALTER TABLE user_profiles DROP COLUMN phone_index;
ALTER TABLE user_profiles DROP CONSTRAINT user_profiles_phone_check;
ALTER TABLE user_profiles DROP CONSTRAINT user_profiles_bio_check;
ALTER TABLE user_profiles ADD CONSTRAINT user_profiles_phone_check CHECK (length(phone) <= 32);
ALTER TABLE user_profiles ADD CONSTRAINT user_profiles_bio_check CHECK (length(bio) <= 2000);
DROP TABLE pii_keys;
