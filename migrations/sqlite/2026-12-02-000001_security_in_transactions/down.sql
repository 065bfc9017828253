DROP TABLE revocations;
DROP TABLE revocation_counter;
ALTER TABLE login_failures_by_ip DROP COLUMN refusal_audited;
ALTER TABLE login_failures_by_ip DROP COLUMN pending_since;
ALTER TABLE login_failures_by_ip DROP COLUMN pending;
ALTER TABLE login_failures DROP COLUMN refusal_audited;
ALTER TABLE login_failures DROP COLUMN pending_since;
ALTER TABLE login_failures DROP COLUMN pending;
