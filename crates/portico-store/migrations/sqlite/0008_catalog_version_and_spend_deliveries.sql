-- The catalog's version and the spend deliveries already applied (spec section 9).
--
-- `catalog_version` is one row whose counter every write transaction that changes the catalog
-- increments: processes sharing this database poll it (one primary-key read) to notice a
-- change made through another process's admin API, and hybrid gateways get it as the
-- version of their snapshot.
CREATE TABLE catalog_version (
    id      INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    version INTEGER NOT NULL
);
INSERT INTO catalog_version (id, version) VALUES (1, 0);

-- Batches of spend a hybrid gateway delivered, by the gateway's batch id: a batch delivered
-- again (the answer to the first delivery was lost) is recognised and changes nothing.
CREATE TABLE spend_deliveries (
    batch      TEXT    NOT NULL PRIMARY KEY,
    -- Unix milliseconds.
    applied_at INTEGER NOT NULL
);
