-- The request log on PostgreSQL (src/postgres/mod.rs has the why of each choice). It lives in
-- the schema `portico_logs`, created before this runs and first on the connections' search
-- path, so its tables and its own `_sqlx_migrations` never meet the catalog's in `public`.
--
-- `logs` is one row per request: every filterable or groupable field a plain column,
-- `created_at` in Unix milliseconds as on SQLite (cursors and buckets are the same integer
-- arithmetic on both). `seq` is the internal handle: payload rows point at it, and it breaks
-- ties of `created_at` in the newest-first order. Unlike SQLite's rowid, PostgreSQL does not
-- append it to index entries, so every list index ends in (created_at, seq): a filtered page
-- is then one backward index range scan, with no sort, and the cursor is a row comparison
-- on the same columns.

CREATE TABLE logs (
    seq                 BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id                  TEXT             NOT NULL UNIQUE,
    created_at          BIGINT           NOT NULL,   -- unix milliseconds
    trace_id            TEXT             NOT NULL,
    key_name            TEXT,
    gateway             TEXT,                        -- the hybrid gateway's key name
    end_user            TEXT,                        -- `user` (a reserved word here)
    provider            TEXT,
    model               TEXT,
    endpoint            TEXT             NOT NULL,
    status              INTEGER          NOT NULL,
    stream              BOOLEAN          NOT NULL,
    outcome             TEXT             NOT NULL,
    latency_ms          BIGINT           NOT NULL,
    upstream_latency_ms BIGINT,
    ttft_ms             BIGINT,
    prompt_tokens       BIGINT,
    completion_tokens   BIGINT,
    cached_tokens       BIGINT,
    cache_write_tokens  BIGINT,
    cost_usd            DOUBLE PRECISION,
    cache_status        TEXT,
    cache_saved_usd     DOUBLE PRECISION,
    cache_similarity    DOUBLE PRECISION,
    retry_count         INTEGER          NOT NULL,
    target              TEXT,
    config_id           TEXT,
    error_code          TEXT,
    error               TEXT,
    -- Searched (`metadata.<k>=<v>` is containment, `@>`, through the GIN index below).
    metadata            JSONB,
    -- Only ever answered, never searched: `json` keeps the text as written (key order
    -- included) and costs no conversion on insert.
    attempts            JSON             NOT NULL,
    guardrails          JSON
);

CREATE INDEX logs_created_at   ON logs (created_at, seq);
CREATE INDEX logs_trace_id     ON logs (trace_id, created_at, seq);
CREATE INDEX logs_key_name     ON logs (key_name, created_at, seq);
CREATE INDEX logs_gateway      ON logs (gateway, created_at, seq);
CREATE INDEX logs_end_user     ON logs (end_user, created_at, seq);
CREATE INDEX logs_provider     ON logs (provider, created_at, seq);
CREATE INDEX logs_model        ON logs (model, created_at, seq);
-- `status=2xx` is an equality on the class, walked in (created_at, seq) order; an exact
-- status adds `status = $n` on top (as on SQLite, migrations/0002).
CREATE INDEX logs_status_class ON logs ((status / 100), created_at, seq);
-- jsonb_path_ops: only `@>` is needed, and its index is smaller and faster than the default.
CREATE INDEX logs_metadata     ON logs USING GIN (metadata jsonb_path_ops);

-- Payloads in a table of their own, as on SQLite: list queries and scans of `logs` never
-- read them, and a replayed batch's duplicates never send them (they are inserted only for
-- the rows that were new). No foreign key: rows are deleted with their entry in the same
-- statement (src/postgres/prune.rs), and a key check per insert would cost for nothing.
CREATE TABLE log_payloads (
    log_seq       BIGINT PRIMARY KEY,
    request       BYTEA,
    request_size  BIGINT,   -- the payload's size before truncation
    response      BYTEA,
    response_size BIGINT
);
