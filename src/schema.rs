// Diesel table definitions matching `migrations/`. SQLite `INTEGER` columns are
// 64-bit, so ids are declared `BigInt` to map one-to-one onto PostgreSQL BIGINT.

diesel::table! {
    app_secrets (name) {
        name -> Text,
        value -> Binary,
        created_at -> BigInt,
    }
}

diesel::table! {
    audit_events (id) {
        id -> BigInt,
        at -> BigInt,
        kind -> Text,
        actor_user_id -> Nullable<BigInt>,
        subject_user_id -> Nullable<BigInt>,
        subject_username -> Nullable<Text>,
        session_id -> Nullable<BigInt>,
        ip -> Nullable<Text>,
        user_agent -> Nullable<Text>,
        detail -> Nullable<Text>,
    }
}

diesel::table! {
    login_failures (username, ip) {
        username -> Text,
        ip -> Text,
        failures -> Integer,
        window_started_at -> BigInt,
        locked_until -> Nullable<BigInt>,
        pending -> Integer,
        pending_since -> BigInt,
        refusal_audited -> Bool,
    }
}

diesel::table! {
    login_failures_by_ip (ip) {
        ip -> Text,
        failures -> Integer,
        window_started_at -> BigInt,
        locked_until -> Nullable<BigInt>,
        pending -> Integer,
        pending_since -> BigInt,
        refusal_audited -> Bool,
    }
}

diesel::table! {
    refresh_tokens (id) {
        id -> BigInt,
        session_id -> BigInt,
        token_hash -> Binary,
        created_at -> BigInt,
        expires_at -> BigInt,
        rotated_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    revocation_counter (id) {
        id -> Integer,
        value -> BigInt,
    }
}

diesel::table! {
    revocations (seq) {
        seq -> BigInt,
        session_id -> BigInt,
        revoked_at -> BigInt,
    }
}

diesel::table! {
    sessions (id) {
        id -> BigInt,
        user_id -> BigInt,
        created_at -> BigInt,
        last_used_at -> BigInt,
        expires_at -> BigInt,
        absolute_expires_at -> BigInt,
        ip -> Text,
        user_agent -> Text,
        revoked_at -> Nullable<BigInt>,
        revoked_reason -> Nullable<Text>,
        amr -> Text,
    }
}

diesel::table! {
    totp_factors (user_id) {
        user_id -> BigInt,
        secret -> Binary,
        created_at -> BigInt,
        last_step -> BigInt,
    }
}

diesel::table! {
    passkeys (id) {
        id -> BigInt,
        user_id -> BigInt,
        credential_id -> Binary,
        name -> Text,
        passkey -> Text,
        created_at -> BigInt,
        last_used_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    recovery_codes (id) {
        id -> BigInt,
        user_id -> BigInt,
        code_hash -> Binary,
        created_at -> BigInt,
        used_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    signing_keys (kid) {
        kid -> Text,
        algorithm -> Text,
        private_key -> Binary,
        public_key -> Binary,
        created_at -> BigInt,
        retired_at -> Nullable<BigInt>,
        activated_at -> Nullable<BigInt>,
        revoked_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    webauthn_ceremonies (id) {
        id -> Binary,
        purpose -> Text,
        user_id -> Nullable<BigInt>,
        name -> Nullable<Text>,
        state -> Text,
        ip -> Text,
        expires_at -> BigInt,
    }
}

diesel::table! {
    users (id) {
        id -> BigInt,
        username -> Text,
        password_hash -> Text,
        role -> Text,
        disabled -> Bool,
        created_at -> BigInt,
    }
}

diesel::joinable!(refresh_tokens -> sessions (session_id));
diesel::joinable!(sessions -> users (user_id));
diesel::joinable!(totp_factors -> users (user_id));
diesel::joinable!(recovery_codes -> users (user_id));
diesel::joinable!(passkeys -> users (user_id));

diesel::allow_tables_to_appear_in_same_query!(
    app_secrets,
    audit_events,
    login_failures,
    login_failures_by_ip,
    refresh_tokens,
    revocation_counter,
    revocations,
    sessions,
    signing_keys,
    totp_factors,
    recovery_codes,
    passkeys,
    webauthn_ceremonies,
    users,
);
