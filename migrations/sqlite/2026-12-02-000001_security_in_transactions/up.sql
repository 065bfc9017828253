-- Attempts counted before their password is checked (pending), and since when; the first
-- sign-in refused during a running lockout is audited once per lock.
ALTER TABLE login_failures ADD COLUMN pending INTEGER NOT NULL DEFAULT 0;
ALTER TABLE login_failures ADD COLUMN pending_since BIGINT NOT NULL DEFAULT 0;
ALTER TABLE login_failures ADD COLUMN refusal_audited BOOLEAN NOT NULL DEFAULT 0;
ALTER TABLE login_failures_by_ip ADD COLUMN pending INTEGER NOT NULL DEFAULT 0;
ALTER TABLE login_failures_by_ip ADD COLUMN pending_since BIGINT NOT NULL DEFAULT 0;
ALTER TABLE login_failures_by_ip ADD COLUMN refusal_audited BOOLEAN NOT NULL DEFAULT 0;

-- Every revocation, numbered in commit order by one counter row that each revoking
-- transaction bumps (and so holds until it commits): running servers poll "after the
-- last number I saw", which no writer's clock can make them miss. A log of its own,
-- without a foreign key, so deleting a user (and its sessions) keeps the revocations
-- until housekeeping drops them.
CREATE TABLE revocation_counter (
    id INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    value BIGINT NOT NULL
);
INSERT INTO revocation_counter (id, value) VALUES (1, 0);
CREATE TABLE revocations (
    seq BIGINT PRIMARY KEY NOT NULL,
    session_id BIGINT NOT NULL,
    revoked_at BIGINT NOT NULL
);
CREATE INDEX revocations_revoked_at ON revocations (revoked_at);
