-- A session's last use is when its newest refresh token was made (max(created_at) per session),
-- so a refresh no longer rewrites the session row; this index answers that and the session's tokens.
CREATE INDEX refresh_tokens_session_id_created_at_idx ON refresh_tokens (session_id, created_at);
DROP INDEX refresh_tokens_session_id_idx;
