-- The first sign-in refused during a running lockout is audited once per lock.
ALTER TABLE login_failures ADD COLUMN refusal_audited BOOLEAN NOT NULL DEFAULT 0;
ALTER TABLE login_failures_by_ip ADD COLUMN refusal_audited BOOLEAN NOT NULL DEFAULT 0;

-- Revocations are numbered in commit order by one counter row that every revoking
-- transaction bumps (and so holds until it commits): running servers poll "after the
-- last number I saw", which no writer's clock can make them miss.
ALTER TABLE sessions ADD COLUMN revoked_seq BIGINT;
CREATE INDEX sessions_revoked_seq ON sessions (revoked_seq) WHERE revoked_seq IS NOT NULL;
CREATE TABLE revocation_counter (
    id INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    value BIGINT NOT NULL
);
INSERT INTO revocation_counter (id, value) VALUES (1, 0);
