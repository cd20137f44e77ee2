-- The catalog (providers and their models), gateway keys, and store metadata: the tables of
-- sqlite/0001_catalog.sql in PostgreSQL types. Times are Unix milliseconds (BIGINT), JSON is
-- kept as TEXT (compared as text by the apply, so it must round-trip byte for byte), secrets
-- are BYTEA. Flags stay INTEGER 0/1 with the same CHECK as on SQLite, so one query text and
-- one row decoding serve both engines.

-- Facts about the store itself, such as the master-key canary.
CREATE TABLE meta (
    key   TEXT  NOT NULL PRIMARY KEY,
    value BYTEA NOT NULL
);

CREATE TABLE providers (
    slug        TEXT    NOT NULL PRIMARY KEY,
    kind        TEXT    NOT NULL,
    base_url    TEXT,
    -- The provider API key encrypted under the master key (see crypto.rs for the format).
    api_key_enc BYTEA,
    -- Kind-specific settings, a JSON object.
    settings    TEXT    NOT NULL,
    -- 0: no allow-list (any model passes through); 1: only the rows in `models`.
    has_models  INTEGER NOT NULL CHECK (has_models IN (0, 1)),
    source      TEXT    NOT NULL CHECK (source IN ('file', 'env', 'default', 'api')),
    created_at  BIGINT  NOT NULL,
    updated_at  BIGINT  NOT NULL
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
    -- Named, so 0006 can widen it in place.
    key_type       TEXT    NOT NULL
        CONSTRAINT keys_key_type_check CHECK (key_type IN ('admin', 'service', 'user')),
    user_id        TEXT,
    -- SHA-256 of the secret, lowercase hex. The secret itself is never stored.
    key_hash       TEXT    NOT NULL UNIQUE,
    hint           TEXT    NOT NULL,
    -- JSON array of `@slug` / `@slug/model` patterns; NULL means all.
    allowed_models TEXT,
    log_payloads   INTEGER NOT NULL CHECK (log_payloads IN (0, 1)),
    source         TEXT    NOT NULL CHECK (source IN ('file', 'env', 'default', 'api')),
    created_at     BIGINT  NOT NULL,
    updated_at     BIGINT  NOT NULL,
    -- Set instead of deleting, so the key's history (spend, logs) keeps its reference.
    revoked_at     BIGINT
);
