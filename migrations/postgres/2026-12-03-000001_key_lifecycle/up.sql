-- The signing-key lifecycle: when a key started signing (the automatic rotation counts
-- from there) and when it was revoked (a compromised key: unpublished, refused at once).
ALTER TABLE signing_keys ADD COLUMN activated_at BIGINT;
ALTER TABLE signing_keys ADD COLUMN revoked_at BIGINT;
-- The key signing today, per algorithm, is the oldest unretired one: it signs since the
-- last retirement of its algorithm, or since it was made.
UPDATE signing_keys SET activated_at = COALESCE(
    (SELECT MAX(r.retired_at) FROM signing_keys r
      WHERE r.algorithm = signing_keys.algorithm AND r.retired_at IS NOT NULL),
    signing_keys.created_at)
WHERE signing_keys.retired_at IS NULL
  AND signing_keys.kid = (SELECT c.kid FROM signing_keys c
      WHERE c.algorithm = signing_keys.algorithm AND c.retired_at IS NULL
      ORDER BY c.created_at, c.kid LIMIT 1);
