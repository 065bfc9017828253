DROP TABLE login_failures;
DROP TABLE audit_events;
DROP TABLE signing_keys;
DROP TABLE refresh_tokens;
DROP TABLE sessions;
DROP TABLE users;
