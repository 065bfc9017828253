ALTER TABLE sessions DROP COLUMN amr;
DROP TABLE recovery_codes;
DROP TABLE totp_factors;
