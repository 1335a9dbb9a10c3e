-- A read model on users itself: the role names and the profile of each user, kept by the database
-- from user_roles, roles and user_profiles (which stay the source of truth), so reading a user or a
-- page of users is one row each from one index, with no join or subquery per row.
ALTER TABLE users
  ADD COLUMN role_names text[] NOT NULL DEFAULT '{}',
  ADD COLUMN profile jsonb;

-- Recomputed from the source tables rather than patched, so it cannot drift. The row locks come
-- first (in id order, so two statements never deadlock on each other): a concurrent change of the
-- same users' roles then waits for the other to commit, and the recomputing statement (a new
-- snapshot in READ COMMITTED) sees it. NO KEY UPDATE, the lock the UPDATE takes anyway, does not
-- conflict with the KEY SHARE lock that inserting into user_roles took on the same row for its
-- foreign key. A row whose names did not change is not rewritten.
CREATE FUNCTION users_refresh_role_names(targets uuid[]) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  PERFORM 1 FROM users WHERE id = ANY(targets) ORDER BY id FOR NO KEY UPDATE;
  UPDATE users u SET role_names = fresh.names
  FROM (
    SELECT t.id, coalesce(
      (SELECT array_agg(r.name ORDER BY r.name) FROM user_roles ur JOIN roles r ON r.id = ur.role_id WHERE ur.user_id = t.id),
      '{}') AS names
    FROM unnest(targets) AS t(id)
  ) fresh
  WHERE u.id = fresh.id AND u.role_names IS DISTINCT FROM fresh.names;
END
$$;

-- Once per statement, over the rows it changed: a bulk insert of roles recomputes each user once.
CREATE FUNCTION user_roles_keep_role_names() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    PERFORM users_refresh_role_names(ARRAY(SELECT DISTINCT user_id FROM new_rows));
  ELSIF TG_OP = 'DELETE' THEN
    PERFORM users_refresh_role_names(ARRAY(SELECT DISTINCT user_id FROM old_rows));
  ELSE
    PERFORM users_refresh_role_names(ARRAY(SELECT user_id FROM old_rows UNION SELECT user_id FROM new_rows));
  END IF;
  RETURN NULL;
END
$$;
CREATE TRIGGER user_roles_keep_role_names_insert
  AFTER INSERT ON user_roles REFERENCING NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION user_roles_keep_role_names();
CREATE TRIGGER user_roles_keep_role_names_update
  AFTER UPDATE ON user_roles REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION user_roles_keep_role_names();
CREATE TRIGGER user_roles_keep_role_names_delete
  AFTER DELETE ON user_roles REFERENCING OLD TABLE AS old_rows
  FOR EACH STATEMENT EXECUTE FUNCTION user_roles_keep_role_names();

CREATE FUNCTION roles_keep_role_names() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM users_refresh_role_names(ARRAY(SELECT ur.user_id FROM user_roles ur WHERE ur.role_id = NEW.id));
  RETURN NULL;
END
$$;
CREATE TRIGGER roles_keep_role_names
  AFTER UPDATE OF name ON roles
  FOR EACH ROW WHEN (OLD.name IS DISTINCT FROM NEW.name)
  EXECUTE FUNCTION roles_keep_role_names();

CREATE FUNCTION user_profiles_keep_profile() RETURNS trigger LANGUAGE plpgsql AS $$
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
CREATE TRIGGER user_profiles_keep_profile
  AFTER INSERT OR UPDATE OR DELETE ON user_profiles
  FOR EACH ROW EXECUTE FUNCTION user_profiles_keep_profile();

UPDATE users u SET role_names = coalesce(
  (SELECT array_agg(r.name ORDER BY r.name) FROM user_roles ur JOIN roles r ON r.id = ur.role_id WHERE ur.user_id = u.id),
  '{}');
UPDATE users u SET profile = jsonb_build_object(
  'bio', p.bio, 'avatarUrl', p.avatar_url, 'phone', p.phone, 'locale', p.locale, 'timezone', p.timezone)
FROM user_profiles p WHERE p.user_id = u.id;

CREATE INDEX users_role_names_idx ON users USING gin (role_names);
-- The live users in page order: an unfiltered page, its keyset continuation and its exact total
-- (an index-only scan) all read this one index.
CREATE INDEX users_live_created_at_id_idx ON users (created_at, id) WHERE deleted_at IS NULL AND erased_at IS NULL;
