CREATE OR REPLACE FUNCTION user_profiles_keep_profile() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN
    UPDATE users SET profile = NULL WHERE id = OLD.user_id;
  ELSE
    UPDATE users SET profile = jsonb_build_object(
      'bio', NEW.bio, 'avatarUrl', NEW.avatar_url, 'phone', NEW.phone, 'locale', NEW.locale, 'timezone', NEW.timezone)
    WHERE id = NEW.user_id;
  END IF;
  RETURN NULL;
END
$$;
