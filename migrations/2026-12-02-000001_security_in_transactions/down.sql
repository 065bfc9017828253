DROP TABLE revocation_counter;
DROP INDEX sessions_revoked_seq;
ALTER TABLE sessions DROP COLUMN revoked_seq;
ALTER TABLE login_failures_by_ip DROP COLUMN refusal_audited;
ALTER TABLE login_failures DROP COLUMN refusal_audited;
