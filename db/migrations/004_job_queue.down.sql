-- Drops the job queue (pg-boss) and every job in it.
DROP SCHEMA IF EXISTS pgboss CASCADE;
