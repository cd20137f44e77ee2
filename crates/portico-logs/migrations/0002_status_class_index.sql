-- `status=2xx` is the dashboard's most common filter. With an index on (status, created_at), a
-- class is a range on the first column, so its matches came out of status order and were
-- sorted (95 % of the rows for 2xx). An index on the class keeps `status / 100 = ?` an
-- equality, walked in (created_at, seq) order with no sort; an exact status adds
-- `status = ?` on top of its class.
DROP INDEX logs_status;
CREATE INDEX logs_status_class ON logs (status / 100, created_at);
