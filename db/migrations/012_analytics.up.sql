-- Analytics (GET /api/v1/analytics/summary) counts audit rows of a few actions per day, week or
-- month. This index finds exactly those rows by action and time, and carries user_id so that the
-- distinct active users come from the index alone (an index-only scan, no heap visit).
CREATE INDEX user_audit_log_action_created_at_idx ON user_audit_log (action, created_at) INCLUDE (user_id);

-- The figures of closed buckets, computed once on first request: the audit trail is append-only
-- and its rows are written at clock time, so a bucket that ended (with a margin for transactions
-- still open) never changes. A year by day then reads 366 rows here, not a year of audit rows.
-- Not a rollup kept by a trigger: that would be one hot row per day and action that every
-- concurrent login updates, and distinct users per week or month do not add up from days.
CREATE TABLE analytics_buckets (
  period         text NOT NULL CHECK (period IN ('day', 'week', 'month')),
  start          timestamptz(3) NOT NULL,
  signups        integer NOT NULL,
  logins         integer NOT NULL,
  active_users   integer NOT NULL,
  failed_logins  integer NOT NULL,
  lockouts       integer NOT NULL,
  computed_at    timestamptz(3) NOT NULL DEFAULT now(),
  PRIMARY KEY (period, start)
);
