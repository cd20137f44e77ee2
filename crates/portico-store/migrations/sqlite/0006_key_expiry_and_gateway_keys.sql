-- Keys of type `gateway` (spec section 9: a data-plane gateway's token to its control plane)
-- and key expiry (`expires_at`).
--
-- SQLite cannot change a CHECK constraint in place, so `keys` is rebuilt: a new table with the
-- wider CHECK and the new column, the rows copied, the old table dropped, the new one renamed.
-- No table refers to `keys` by foreign key (a key's limits are in `key_limits` by key id, its
-- spend in `spend` by subject name), so dropping it inside the migration's transaction, with
-- foreign keys on, deletes nothing else. A later change to `keys` goes in a later migration.

CREATE TABLE keys_0006 (
    -- UUID v7, kept across applies and secret rotations (spend refers to it).
    id             TEXT    NOT NULL PRIMARY KEY,
    name           TEXT    NOT NULL UNIQUE,
    key_type       TEXT    NOT NULL CHECK (key_type IN ('admin', 'service', 'user', 'gateway')),
    user_id        TEXT,
    -- SHA-256 of the secret, lowercase hex. The secret itself is never stored.
    key_hash       TEXT    NOT NULL UNIQUE,
    hint           TEXT    NOT NULL,
    -- JSON array of `@slug` / `@slug/model` patterns; NULL means all.
    allowed_models TEXT,
    log_payloads   INTEGER NOT NULL CHECK (log_payloads IN (0, 1)),
    source         TEXT    NOT NULL CHECK (source IN ('file', 'env', 'default', 'api')),
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL,
    -- Set instead of deleting, so the key's history (spend, logs) keeps its reference.
    revoked_at     INTEGER,
    -- The config applied to every request of the key; NULL for none. A config cannot be
    -- deleted while a key refers to it.
    config_id      TEXT REFERENCES configs (id),
    -- Unix milliseconds from which the key is refused; NULL: it does not expire.
    expires_at     INTEGER
);

INSERT INTO keys_0006 (id, name, key_type, user_id, key_hash, hint, allowed_models,
                       log_payloads, source, created_at, updated_at, revoked_at, config_id,
                       expires_at)
SELECT id, name, key_type, user_id, key_hash, hint, allowed_models, log_payloads, source,
       created_at, updated_at, revoked_at, config_id, NULL
FROM keys;

DROP TABLE keys;

ALTER TABLE keys_0006 RENAME TO keys;
