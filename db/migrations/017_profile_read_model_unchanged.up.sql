-- The profile read model (003) rewrote the user's row for every profile write, even when the row
-- already held that profile. A bulk import writes each new user's profile with the row, so the
-- trigger now leaves a row that is already current alone (as the role names' refresh does): an
-- import of 1000 users with profiles no longer rewrites 1000 rows and their indexes.
CREATE OR REPLACE FUNCTION user_profiles_keep_profile() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  fresh jsonb;
BEGIN
  IF TG_OP = 'DELETE' THEN
    UPDATE users SET profile = NULL WHERE id = OLD.user_id;
  ELSE
    fresh := jsonb_build_object(
      'bio', NEW.bio, 'avatarUrl', NEW.avatar_url, 'phone', NEW.phone, 'locale', NEW.locale, 'timezone', NEW.timezone);
    UPDATE users SET profile = fresh WHERE id = NEW.user_id AND profile IS DISTINCT FROM fresh;
  END IF;
  RETURN NULL;
END
$$;
