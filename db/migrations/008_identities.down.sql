DROP TABLE oidc_login_codes;
DROP TABLE oidc_auth_requests;
DROP TABLE user_identities;
-- Users created through a provider have no password: give them one nothing can match ('!' is no argon2 hash).
UPDATE users SET password_hash = '!' WHERE password_hash IS NULL;
ALTER TABLE users ALTER COLUMN password_hash SET NOT NULL;
