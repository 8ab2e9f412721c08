-- Version 2: key activation (pre-announced rotation), sealed private keys, public-key
-- client credentials (private_key_jwt), and revoked access tokens.

ALTER TABLE signing_keys ADD COLUMN activates_at BIGINT NOT NULL DEFAULT 0;
-- NULL: sealed with the master key; 'plain': written by version 1, unencrypted;
-- 'vault:<path>': kept in Vault, nothing in this row.
ALTER TABLE signing_keys ADD COLUMN key_ref TEXT;
UPDATE signing_keys SET activates_at = created_at, key_ref = 'plain';

ALTER TABLE credentials ADD COLUMN public_jwk TEXT;

CREATE TABLE token_revocations (
    jti         TEXT PRIMARY KEY,
    org_id      UUID NOT NULL,
    expires_at  BIGINT NOT NULL,
    revoked_at  BIGINT NOT NULL
);
CREATE INDEX token_revocations_expiry ON token_revocations (expires_at);
