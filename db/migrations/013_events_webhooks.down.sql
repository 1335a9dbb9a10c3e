-- The webhooks:manage permission stays: migration 011 may own it (see the up migration).
DROP TRIGGER IF EXISTS user_audit_log_to_event ON user_audit_log;
DROP FUNCTION IF EXISTS user_audit_log_to_event();
DROP TABLE IF EXISTS webhook_deliveries;
DROP TABLE IF EXISTS webhooks;
DROP FUNCTION IF EXISTS iso_utc(timestamptz);
DROP TABLE IF EXISTS events;
