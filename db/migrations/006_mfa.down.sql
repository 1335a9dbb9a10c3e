ALTER TABLE user_sessions DROP COLUMN amr;
DROP TABLE mfa_challenges;
DROP TABLE user_recovery_codes;
DROP TABLE user_totp;
