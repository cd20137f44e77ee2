-- The catalog (providers and their models), gateway keys, and store metadata.
--
-- Portable on purpose: plain TEXT / INTEGER / BLOB columns, JSON kept as TEXT, times as Unix
-- milliseconds, CHECK and FOREIGN KEY constraints only. The PostgreSQL migrations declare the
-- same tables with BIGINT for the INTEGER columns and BYTEA for the BLOB ones.

-- Facts about the store itself, such as the master-key canary.
CREATE TABLE meta (
    key   TEXT NOT NULL PRIMARY KEY,
    value BLOB NOT NULL
);

CREATE TABLE providers (
    slug        TEXT    NOT NULL PRIMARY KEY,
    kind        TEXT    NOT NULL,
    base_url    TEXT,
    -- The provider API key encrypted under the master key (see crypto.rs for the format).
    api_key_enc BLOB,
    -- Kind-specific settings, a JSON object.
    settings    TEXT    NOT NULL,
    -- 0: no allow-list (any model passes through); 1: only the rows in `models`.
    has_models  INTEGER NOT NULL CHECK (has_models IN (0, 1)),
    source      TEXT    NOT NULL CHECK (source IN ('file', 'env', 'default', 'api')),
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);

CREATE TABLE models (
    provider_slug TEXT    NOT NULL REFERENCES providers (slug) ON DELETE CASCADE,
    id            TEXT    NOT NULL,
    name          TEXT,
    -- Price overrides, a JSON object; NULL when none.
    pricing       TEXT,
    -- The order of the catalog's list, from 0.
    position      INTEGER NOT NULL,
    PRIMARY KEY (provider_slug, id)
);

CREATE TABLE keys (
    -- UUID v7, kept across applies and secret rotations (spend refers to it).
    id             TEXT    NOT NULL PRIMARY KEY,
    name           TEXT    NOT NULL UNIQUE,
    key_type       TEXT    NOT NULL CHECK (key_type IN ('admin', 'service', 'user')),
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
    revoked_at     INTEGER
);
