-- Responses the gateway keeps for OpenAI's Responses API (`POST /v1/responses` with `store`
-- on): `previous_response_id` continues a conversation on any provider, and
-- `GET`/`DELETE /v1/responses/{id}` find it. `owner` is the gateway key (and user) that made
-- it: nobody else may read, continue or delete it. `payload` is the stored response as JSON
-- (its input items and the Response object), opaque to the store.
CREATE TABLE responses (
    id         TEXT    NOT NULL PRIMARY KEY,
    owner      TEXT    NOT NULL,
    -- Unix milliseconds; responses older than the retention are pruned by it.
    created_at BIGINT  NOT NULL,
    payload    TEXT    NOT NULL
);
CREATE INDEX responses_created_at ON responses (created_at);
