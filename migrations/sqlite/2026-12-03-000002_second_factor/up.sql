-- The second factor. The TOTP secret is sealed (AES-256-GCM) under a key kept outside
-- the database; recovery codes are kept as HMACs under it.
CREATE TABLE totp_factors (
    user_id INTEGER PRIMARY KEY NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    secret BLOB NOT NULL,
    created_at BIGINT NOT NULL,
    last_step BIGINT NOT NULL                 -- the last time step accepted: each at most once
);
CREATE TABLE recovery_codes (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    code_hash BLOB NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    used_at BIGINT
);
CREATE INDEX recovery_codes_user_id ON recovery_codes (user_id);
-- How each session signed in (RFC 8176 methods, comma-separated): its tokens' `amr`.
ALTER TABLE sessions ADD COLUMN amr TEXT NOT NULL DEFAULT 'pwd';
