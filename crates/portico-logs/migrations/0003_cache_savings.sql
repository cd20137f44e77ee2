-- The response cache: what a hit saved (the price of the answer it replayed) and, for a
-- semantic hit, the similarity of the question to the cached one. Null on every other row.
ALTER TABLE logs ADD COLUMN cache_saved_usd REAL;
ALTER TABLE logs ADD COLUMN cache_similarity REAL;
