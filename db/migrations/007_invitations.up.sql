-- Invitations: an admin invites an email; the invitee sets a password and becomes an active,
-- verified user. Only the token's SHA-256 is kept; it is spent by a locked conditional update.
CREATE TABLE invitations (
  id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  email       text NOT NULL CHECK (email = lower(email)),
  first_name  text,
  last_name   text,
  token_hash  text NOT NULL UNIQUE,
  invited_by  uuid REFERENCES users (id) ON DELETE SET NULL,
  created_at  timestamptz(3) NOT NULL DEFAULT now(),
  expires_at  timestamptz(3) NOT NULL,
  accepted_at timestamptz(3),
  accepted_by uuid REFERENCES users (id) ON DELETE SET NULL,
  revoked_at  timestamptz(3)
);
-- The outstanding ones (listed, and revoked when the same email is invited again).
CREATE INDEX invitations_outstanding_idx ON invitations (created_at DESC, id DESC) WHERE accepted_at IS NULL AND revoked_at IS NULL;
CREATE INDEX invitations_email_idx ON invitations (email) WHERE accepted_at IS NULL AND revoked_at IS NULL;

-- The roles the invitee gets; a role deleted meanwhile is simply not given.
CREATE TABLE invitation_roles (
  invitation_id uuid NOT NULL REFERENCES invitations (id) ON DELETE CASCADE,
  role_id       uuid NOT NULL REFERENCES roles (id) ON DELETE CASCADE,
  PRIMARY KEY (invitation_id, role_id)
);
CREATE INDEX invitation_roles_role_id_idx ON invitation_roles (role_id);

ALTER TABLE email_outbox DROP CONSTRAINT email_outbox_template_check;
ALTER TABLE email_outbox ADD CONSTRAINT email_outbox_template_check
  CHECK (template IN ('verify_email', 'password_reset', 'invitation'));
