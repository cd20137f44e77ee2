-- The request log (docs/request-logs.md). One row per request in `logs`; the columns the admin
-- API filters and groups by are plain indexed columns, the nested parts (metadata, attempts,
-- guardrails) JSON text. Metadata is also exploded into `log_metadata` so that
-- `metadata.<k>=<v>` is an index lookup. Payloads live in `log_payloads`, which list queries
-- never read.
--
-- `seq` (the rowid) is the internal handle: the side tables point at it, and it breaks ties of
-- `created_at` in the newest-first order. SQLite appends the rowid to every index entry, so an
-- index on (col, created_at) already yields rows in (created_at, seq) order for `col = ?`.

CREATE TABLE logs (
    seq                 INTEGER PRIMARY KEY,
    id                  TEXT    NOT NULL UNIQUE,
    created_at          INTEGER NOT NULL,   -- unix milliseconds
    trace_id            TEXT    NOT NULL,
    key_name            TEXT,
    user                TEXT,
    provider            TEXT,
    model               TEXT,
    endpoint            TEXT    NOT NULL,
    status              INTEGER NOT NULL,
    stream              INTEGER NOT NULL,
    outcome             TEXT    NOT NULL,
    latency_ms          INTEGER NOT NULL,
    upstream_latency_ms INTEGER,
    ttft_ms             INTEGER,
    prompt_tokens       INTEGER,
    completion_tokens   INTEGER,
    cached_tokens       INTEGER,
    cache_write_tokens  INTEGER,
    cost_usd            REAL,
    cache_status        TEXT,
    retry_count         INTEGER NOT NULL,
    target              TEXT,
    config_id           TEXT,
    error_code          TEXT,
    error               TEXT,
    metadata            TEXT,               -- JSON object, or NULL
    attempts            TEXT    NOT NULL,   -- JSON array
    guardrails          TEXT                -- JSON, or NULL
);

CREATE INDEX logs_created_at ON logs (created_at);
CREATE INDEX logs_trace_id   ON logs (trace_id, created_at);
CREATE INDEX logs_key_name   ON logs (key_name, created_at);
CREATE INDEX logs_user       ON logs (user, created_at);
CREATE INDEX logs_provider   ON logs (provider, created_at);
CREATE INDEX logs_model      ON logs (model, created_at);
CREATE INDEX logs_status     ON logs (status, created_at);

CREATE TABLE log_metadata (
    log_seq INTEGER NOT NULL,
    key     TEXT    NOT NULL,
    value   TEXT    NOT NULL,
    PRIMARY KEY (log_seq, key)
) WITHOUT ROWID;

CREATE INDEX log_metadata_key_value ON log_metadata (key, value);

CREATE TABLE log_payloads (
    log_seq            INTEGER PRIMARY KEY,
    request            BLOB,
    request_size       INTEGER,   -- the payload's size before truncation
    response           BLOB,
    response_size      INTEGER
);
