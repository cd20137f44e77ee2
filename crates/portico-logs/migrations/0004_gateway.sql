-- Hybrid deployments: the gateway that served a request delivered to the control plane (the
-- name of its `type: gateway` key); null for requests this process served. `gateway=<name>`
-- lists one gateway's requests newest first, so the index ends in created_at as the others do.
ALTER TABLE logs ADD COLUMN gateway TEXT;
CREATE INDEX logs_gateway ON logs (gateway, created_at);
