-- Failed sign-ins per client IP across all usernames: the ceiling against credential stuffing.
CREATE TABLE login_failures_by_ip (
    ip TEXT PRIMARY KEY NOT NULL,
    failures INTEGER NOT NULL,
    window_started_at BIGINT NOT NULL,
    locked_until BIGINT
);
