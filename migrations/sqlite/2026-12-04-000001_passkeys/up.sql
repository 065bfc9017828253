-- Passkeys (WebAuthn discoverable credentials). `passkey` is webauthn-rs' record of the
-- credential (its public key and signature counter) as JSON: nothing secret.
CREATE TABLE passkeys (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    credential_id BLOB NOT NULL UNIQUE,
    name TEXT NOT NULL,
    passkey TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    last_used_at BIGINT
);
CREATE INDEX passkeys_user_id ON passkeys (user_id);
-- A registration or sign-in ceremony in progress: its challenge state, kept here (not in
-- the browser) so that it is used at most once, by any instance. `id` is the SHA-256 of
-- the random id the browser's cookie session holds.
CREATE TABLE webauthn_ceremonies (
    id BLOB PRIMARY KEY NOT NULL,
    purpose TEXT NOT NULL,                    -- 'register' or 'sign_in'
    user_id INTEGER REFERENCES users(id) ON DELETE CASCADE,
    name TEXT,                                -- registration: the new passkey's name
    state TEXT NOT NULL,
    ip TEXT NOT NULL,                         -- the client's: pending ceremonies are capped per IP
    expires_at BIGINT NOT NULL
);
CREATE INDEX webauthn_ceremonies_expires_at ON webauthn_ceremonies (expires_at);
CREATE INDEX webauthn_ceremonies_ip ON webauthn_ceremonies (ip);
