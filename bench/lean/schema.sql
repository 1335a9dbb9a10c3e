-- The lean floor's own schema: one denormalized users table (roles and profile inline), the
-- sessions and refresh tokens a login needs, and the email outbox. Times are kept to the
-- millisecond so a keyset cursor (created_at in ms, id) is exact.
create table users (
  id uuid primary key default gen_random_uuid(),
  email text not null,
  password_hash text not null,
  first_name text not null,
  last_name text not null,
  status text not null default 'active' check (status in ('active', 'suspended', 'pending')),
  email_verified boolean not null default false,
  roles text[] not null default '{user}',
  profile jsonb,
  last_login_at timestamptz,
  created_at timestamptz not null default date_trunc('milliseconds', now()),
  updated_at timestamptz not null default date_trunc('milliseconds', now()),
  deleted_at timestamptz
);
create unique index users_email_live on users (email) where deleted_at is null;
-- Page order, keyset cursors and the exact count (an index-only scan) all use this one.
create index users_created_live on users (created_at, id) where deleted_at is null;

create table sessions (
  id uuid primary key default gen_random_uuid(),
  user_id uuid not null references users (id),
  created_at timestamptz not null default now(),
  expires_at timestamptz not null,
  revoked_at timestamptz
);
create index sessions_user on sessions (user_id);

create table refresh_tokens (
  token_hash text primary key,
  session_id uuid not null references sessions (id),
  user_id uuid not null,
  expires_at timestamptz not null,
  spent_at timestamptz
);

create table email_tokens (
  token_hash text primary key,
  user_id uuid not null references users (id),
  purpose text not null,
  expires_at timestamptz not null,
  used_at timestamptz
);

create table email_outbox (
  id bigserial primary key,
  to_address text not null,
  template text not null,
  payload jsonb not null,
  created_at timestamptz not null default now(),
  sent_at timestamptz
);

-- Every instance caches auth state (status, roles, session) and drops a user's entries when the
-- database says they changed: a revocation reaches all instances without a query per request.
create function lean_auth_changed () returns trigger language plpgsql as $$
begin
  perform pg_notify('lean_auth', (case when tg_table_name = 'users' then new.id else new.user_id end)::text);
  return null;
end $$;
create trigger users_auth_changed after update of status, roles, deleted_at on users for each row
  when (old.status is distinct from new.status or old.roles is distinct from new.roles or old.deleted_at is distinct from new.deleted_at)
  execute function lean_auth_changed();
create trigger sessions_auth_changed after update of revoked_at on sessions for each row
  when (old.revoked_at is distinct from new.revoked_at)
  execute function lean_auth_changed();
