-- Budgets and rate limits (spec section 6) as the catalog declares them: on providers, on
-- keys, and the named budgets of the `budgets:` list, matched on request metadata. Limits are
-- one JSON object, {"budget": {...}, "rate_limit": {...}}, either part absent when not set.

-- A provider's limits; NULL when it has none.
ALTER TABLE providers ADD COLUMN limits TEXT;

-- A key's limits (on a user key: its user's), by key id, which rotation keeps. A table of its
-- own rather than a column of `keys`: rebuilding `keys` (the only way SQLite changes a CHECK)
-- then never drops it. Keys are revoked, never deleted, so no row is orphaned.
CREATE TABLE key_limits (
    key_id TEXT NOT NULL PRIMARY KEY,
    limits TEXT NOT NULL
);

-- The catalog's `budgets:` list.
CREATE TABLE budgets (
    -- The subject is `budget:<name>`.
    name       TEXT    NOT NULL PRIMARY KEY,
    -- JSON object: metadata key (without `metadata.`) -> the value it must have.
    matches    TEXT    NOT NULL,
    limits     TEXT    NOT NULL,
    source     TEXT    NOT NULL CHECK (source IN ('file', 'env', 'default', 'api')),
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
