DROP TRIGGER IF EXISTS roles_auth_state_changed ON roles;
DROP TRIGGER IF EXISTS user_roles_auth_state_changed ON user_roles;
DROP TRIGGER IF EXISTS user_sessions_auth_state_changed ON user_sessions;
DROP TRIGGER IF EXISTS users_auth_state_changed ON users;
DROP FUNCTION IF EXISTS notify_auth_state_changed();
