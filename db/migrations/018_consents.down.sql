DROP TRIGGER user_audit_log_to_event ON user_audit_log;
CREATE TRIGGER user_audit_log_to_event
  AFTER INSERT ON user_audit_log
  FOR EACH ROW EXECUTE FUNCTION user_audit_log_to_event();
DROP TABLE IF EXISTS user_consents;
DROP FUNCTION IF EXISTS user_consents_append_only();
