-- Secrets the instances sharing this database must agree on (the key of the pages'
-- cookie session), created once by whichever instance starts first.
CREATE TABLE app_secrets (
    name TEXT PRIMARY KEY NOT NULL,
    value BLOB NOT NULL,
    created_at BIGINT NOT NULL
);
