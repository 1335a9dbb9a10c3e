-- Every change that can invalidate an access token (status, deletion, erasure, a revoked or
-- removed login, a role assignment, a role's permissions) notifies 'auth_state_changed' with the
-- user id ('*' for a role: all its holders), so each instance can drop what it cached.
CREATE FUNCTION notify_auth_state_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_TABLE_NAME = 'roles' THEN
    PERFORM pg_notify('auth_state_changed', '*');
  ELSIF TG_OP = 'DELETE' THEN
    PERFORM pg_notify('auth_state_changed', OLD.user_id::text);
  ELSIF TG_TABLE_NAME = 'users' THEN
    PERFORM pg_notify('auth_state_changed', NEW.id::text);
  ELSE
    PERFORM pg_notify('auth_state_changed', NEW.user_id::text);
  END IF;
  RETURN NULL;
END
$$;

CREATE TRIGGER users_auth_state_changed
  AFTER UPDATE OF status, deleted_at, erased_at ON users
  FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status OR OLD.deleted_at IS DISTINCT FROM NEW.deleted_at OR OLD.erased_at IS DISTINCT FROM NEW.erased_at)
  EXECUTE FUNCTION notify_auth_state_changed();
CREATE TRIGGER user_sessions_auth_state_changed
  AFTER UPDATE OF revoked_at, expires_at OR DELETE ON user_sessions
  FOR EACH ROW EXECUTE FUNCTION notify_auth_state_changed();
CREATE TRIGGER user_roles_auth_state_changed
  AFTER INSERT OR UPDATE OR DELETE ON user_roles
  FOR EACH ROW EXECUTE FUNCTION notify_auth_state_changed();
CREATE TRIGGER roles_auth_state_changed
  AFTER UPDATE OF permissions OR DELETE ON roles
  FOR EACH STATEMENT EXECUTE FUNCTION notify_auth_state_changed();
