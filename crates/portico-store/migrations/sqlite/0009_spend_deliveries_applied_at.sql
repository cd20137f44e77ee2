-- Deliveries are forgotten after a retention period (`SpendStore::prune_deliveries`): the
-- delete finds them by when they were applied.
CREATE INDEX spend_deliveries_applied_at ON spend_deliveries (applied_at);
