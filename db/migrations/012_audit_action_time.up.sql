-- Analytics (GET /api/v1/analytics/summary) counts audit rows of a few actions per day, week or
-- month of a range: this index finds exactly those rows by action and time, and carries user_id
-- so the distinct active users come from the index alone (an index-only scan, no heap visit).
-- An index rather than a rollup table: a rollup row per day and action would be one hot row
-- that every concurrent login updates, and distinct users per week do not add up from days.
CREATE INDEX user_audit_log_action_created_at_idx ON user_audit_log (action, created_at) INCLUDE (user_id);
