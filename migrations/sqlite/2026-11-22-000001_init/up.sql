-- Timestamps are Unix milliseconds (BIGINT) so the same schema maps onto PostgreSQL.
CREATE TABLE users (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    username TEXT NOT NULL UNIQUE,            -- stored lower-case
    password_hash TEXT NOT NULL,              -- argon2id PHC string
    role TEXT NOT NULL CHECK (role IN ('user', 'admin')),
    disabled BOOLEAN NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL
);

CREATE TABLE sessions (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    last_used_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,               -- idle expiry: the newest refresh token's
    absolute_expires_at BIGINT NOT NULL,      -- created_at + LATCHKEY_SESSION_MAX
    ip TEXT NOT NULL,
    user_agent TEXT NOT NULL,
    revoked_at BIGINT,
    revoked_reason TEXT
);
-- "my sessions" and "revoke all of a user's sessions"
CREATE INDEX sessions_user_id ON sessions (user_id, id);
-- the revocation set is refreshed by polling recent revocations
CREATE INDEX sessions_revoked_at ON sessions (revoked_at) WHERE revoked_at IS NOT NULL;
-- housekeeping
CREATE INDEX sessions_expires_at ON sessions (expires_at);

CREATE TABLE refresh_tokens (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    session_id BIGINT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    token_hash BLOB NOT NULL UNIQUE,          -- SHA-256 of the token; never the token
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    rotated_at BIGINT                         -- set when it was exchanged for a successor
);
CREATE INDEX refresh_tokens_session_id ON refresh_tokens (session_id);
CREATE INDEX refresh_tokens_expires_at ON refresh_tokens (expires_at);

CREATE TABLE signing_keys (
    kid TEXT PRIMARY KEY NOT NULL,
    algorithm TEXT NOT NULL,
    private_key BLOB NOT NULL,                -- PKCS#8 DER
    public_key BLOB NOT NULL,                 -- raw 32-byte Ed25519 public key
    created_at BIGINT NOT NULL,
    retired_at BIGINT                         -- when a newer key replaced it
);

CREATE TABLE audit_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    at BIGINT NOT NULL,
    kind TEXT NOT NULL,
    actor_user_id BIGINT,
    subject_user_id BIGINT,
    subject_username TEXT,
    session_id BIGINT,
    ip TEXT,
    user_agent TEXT,
    detail TEXT
);
CREATE INDEX audit_events_subject ON audit_events (subject_user_id, id);

CREATE TABLE login_failures (
    username TEXT NOT NULL,
    ip TEXT NOT NULL,
    failures INTEGER NOT NULL,
    window_started_at BIGINT NOT NULL,
    locked_until BIGINT,
    PRIMARY KEY (username, ip)
);
