-- Kind-specific provider secrets (AWS access keys of a bedrock provider, ...): one JSON object
-- of name -> secret, encrypted under the master key like `api_key_enc` (see crypto.rs for the
-- format). NULL when the provider has none.
ALTER TABLE providers ADD COLUMN credentials_enc BYTEA;
