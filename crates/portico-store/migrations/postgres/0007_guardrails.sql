-- Named guardrails (spec section 7): Portkey's guardrail JSON, addressed by id from a routing
-- config's input_guardrails / output_guardrails; the catalog file's (`file`, replaced by each
-- apply of the file) and the admin API's (`api`).

CREATE TABLE guardrails (
    -- How routing configs name the guardrail.
    id         TEXT   NOT NULL PRIMARY KEY,
    -- The guardrail JSON as given (validated before it is written), an object.
    guardrail  TEXT   NOT NULL,
    source     TEXT   NOT NULL CHECK (source IN ('file', 'api')),
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
