DELETE FROM email_outbox WHERE template = 'invitation';
ALTER TABLE email_outbox DROP CONSTRAINT email_outbox_template_check;
ALTER TABLE email_outbox ADD CONSTRAINT email_outbox_template_check
  CHECK (template IN ('verify_email', 'password_reset'));
DROP TABLE invitation_roles;
DROP TABLE invitations;
