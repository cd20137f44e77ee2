-- The ledger of budgets and rate limits: per subject, what it spent in its current period
-- and the seconds of its one-minute rate window that still count. Written in batches off the
-- request path (about once a second, and at shutdown) and read once at start. Subjects are
-- kept by their displayed name (`key:<name>`, `provider:<slug>`, `user:<user>`,
-- `budget:<name>`), so a subject removed from the catalog and declared again finds its spend.
CREATE TABLE spend (
    subject      TEXT    NOT NULL PRIMARY KEY,
    -- The period the spend counts over; NULL for a subject with a rate limit only.
    period       TEXT    CHECK (period IN ('day', 'week', 'month')),
    -- Unix milliseconds.
    period_start INTEGER NOT NULL,
    cost_usd     REAL    NOT NULL,
    tokens       INTEGER NOT NULL,
    -- JSON array of {second, requests, tokens}, oldest first; NULL when empty.
    rate_window  TEXT,
    updated_at   INTEGER NOT NULL
);
