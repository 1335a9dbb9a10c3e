DROP TABLE webauthn_challenges;
DROP TABLE user_passkeys;
