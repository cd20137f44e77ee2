-- Routing configs (Portkey's config JSON, spec section 5), addressed by id, and the config a
-- key is attached to.

CREATE TABLE configs (
    -- How keys, the `x-portkey-config` header and the admin API name the config.
    id         TEXT    NOT NULL PRIMARY KEY,
    -- The config JSON as given (validated before it is written), an object.
    config     TEXT    NOT NULL,
    source     TEXT    NOT NULL CHECK (source IN ('file', 'env', 'default', 'api')),
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

-- The config applied to every request of the key; NULL for none. A config cannot be deleted
-- while a key refers to it.
ALTER TABLE keys ADD COLUMN config_id TEXT REFERENCES configs (id);
