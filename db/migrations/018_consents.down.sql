DROP TABLE IF EXISTS user_consents;
DROP FUNCTION IF EXISTS user_consents_append_only();
