-- The ledger of budgets and rate limits: per subject, what it spent in its current period
-- and the seconds of its one-minute rate window that still count (see sqlite/0005_spend.sql).
CREATE TABLE spend (
    subject      TEXT             NOT NULL PRIMARY KEY,
    -- The period the spend counts over; NULL for a subject with a rate limit only.
    period       TEXT             CHECK (period IN ('day', 'week', 'month')),
    -- Unix milliseconds.
    period_start BIGINT           NOT NULL,
    cost_usd     DOUBLE PRECISION NOT NULL,
    tokens       BIGINT           NOT NULL,
    -- JSON array of {second, requests, tokens}, oldest first; NULL when empty.
    rate_window  TEXT,
    updated_at   BIGINT           NOT NULL
);
