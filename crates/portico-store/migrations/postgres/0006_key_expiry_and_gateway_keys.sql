-- Keys of type `gateway` (spec section 9: a data-plane gateway's token to its control plane)
-- and key expiry (`expires_at`). PostgreSQL changes a CHECK in place; SQLite had to rebuild
-- the table for the same result.

ALTER TABLE keys DROP CONSTRAINT keys_key_type_check;
ALTER TABLE keys ADD CONSTRAINT keys_key_type_check
    CHECK (key_type IN ('admin', 'service', 'user', 'gateway'));

-- Unix milliseconds from which the key is refused; NULL: it does not expire.
ALTER TABLE keys ADD COLUMN expires_at BIGINT;
