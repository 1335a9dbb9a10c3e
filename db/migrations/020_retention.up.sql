-- Retention (CONTRACT.md, "Privacy and retention"): RETENTION_AUDIT deletes audit rows past that
-- age. The trail stays append-only otherwise: a delete is let through only for rows older than
-- the cutoff that the purge declares in its own transaction (app.audit_purge_before, set by
-- src/repositories/retention.ts), so even a purge cannot delete a recent row. The trigger is
-- split rather than its function rewritten: user_audit_log_append_only() keeps deciding updates
-- (erasure, and any exception a later migration adds there), the delete trigger only fires when
-- the row is not covered by a declared purge.
DROP TRIGGER user_audit_log_append_only ON user_audit_log;
CREATE TRIGGER user_audit_log_append_only
  BEFORE UPDATE ON user_audit_log
  FOR EACH ROW EXECUTE FUNCTION user_audit_log_append_only();
CREATE TRIGGER user_audit_log_append_only_delete
  BEFORE DELETE ON user_audit_log
  FOR EACH ROW
  WHEN (OLD.created_at >= coalesce(nullif(current_setting('app.audit_purge_before', true), '')::timestamptz, '-infinity'))
  EXECUTE FUNCTION user_audit_log_append_only();
