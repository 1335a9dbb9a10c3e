DROP INDEX users_phone_trgm_idx;
DROP INDEX users_name_trgm_idx;
DROP INDEX users_email_trgm_idx;

UPDATE roles SET permissions = ARRAY(
  SELECT p FROM unnest(permissions) AS p WHERE p NOT IN ('webhooks:manage', 'analytics:read') ORDER BY p)
WHERE permissions && ARRAY['webhooks:manage', 'analytics:read'];
ALTER TABLE roles DROP CONSTRAINT roles_permissions_check;
ALTER TABLE roles ADD CONSTRAINT roles_permissions_check CHECK (permissions <@ ARRAY[
  'users:read', 'users:write', 'users:delete', 'roles:manage', 'audit:read']::text[]);
