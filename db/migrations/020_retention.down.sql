DROP TRIGGER IF EXISTS user_audit_log_append_only_delete ON user_audit_log;
DROP TRIGGER IF EXISTS user_audit_log_append_only ON user_audit_log;
CREATE TRIGGER user_audit_log_append_only
  BEFORE UPDATE OR DELETE ON user_audit_log
  FOR EACH ROW EXECUTE FUNCTION user_audit_log_append_only();
