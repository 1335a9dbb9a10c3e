-- Idempotency-Key: one row per key a caller (a user, or for anonymous routes the route) sent on a
-- POST. The first request claims the row (running); its answer is kept (done) for 24 h and
-- replayed to a retry of the same request. Shared by every instance.
CREATE TABLE idempotency_keys (
  scope        text NOT NULL,
  key          text NOT NULL,
  -- SHA-256 (hex) of the method, path and canonical body: the same key on another request is refused.
  request_hash text NOT NULL,
  -- Who holds a running claim: only that request may store or release it.
  claim_id     uuid NOT NULL DEFAULT gen_random_uuid(),
  state        text NOT NULL DEFAULT 'running' CHECK (state IN ('running', 'done')),
  -- A running claim whose holder died (crash, kill) is given up at this time.
  locked_until timestamptz(3) NOT NULL,
  status_code  integer CHECK (status_code BETWEEN 100 AND 499),
  body         text,
  -- The answer's own headers a replay repeats (Location, ETag), lower-case names.
  headers      jsonb NOT NULL DEFAULT '{}',
  created_at   timestamptz(3) NOT NULL DEFAULT now(),
  expires_at   timestamptz(3) NOT NULL,
  PRIMARY KEY (scope, key),
  CHECK (state = 'running' OR status_code IS NOT NULL)
);
-- The purge deletes by age.
CREATE INDEX idempotency_keys_expires_at_idx ON idempotency_keys (expires_at);
