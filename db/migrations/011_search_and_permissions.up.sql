-- The second edition's permissions (CONTRACT.md, "Conventions, added"): webhooks:manage and
-- analytics:read join the catalogue, and the built-in admin, which has every permission, gets them.
ALTER TABLE roles DROP CONSTRAINT roles_permissions_check;
ALTER TABLE roles ADD CONSTRAINT roles_permissions_check CHECK (permissions <@ ARRAY[
  'users:read', 'users:write', 'users:delete', 'roles:manage', 'audit:read', 'webhooks:manage', 'analytics:read']::text[]);
UPDATE roles SET permissions = ARRAY(
  SELECT DISTINCT p FROM unnest(permissions || ARRAY['webhooks:manage', 'analytics:read']) AS p ORDER BY p)
WHERE name = 'admin' AND built_in;

-- Advanced search (CONTRACT.md): each field term is an ILIKE '%...%' (and, for relevance and
-- fuzzy words, a trigram similarity) on one of these expressions, so a search reads a trigram
-- index instead of scanning the table. Plain words and phrases use users_search_trgm_idx (001).
CREATE INDEX users_email_trgm_idx ON users USING gin (email gin_trgm_ops);
CREATE INDEX users_name_trgm_idx ON users USING gin ((first_name || ' ' || last_name) gin_trgm_ops);
CREATE INDEX users_phone_trgm_idx ON users USING gin ((profile ->> 'phone') gin_trgm_ops);
