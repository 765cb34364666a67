-- unique-index-nulls-not-distinct
SET lock_timeout = '2s';
CREATE UNIQUE INDEX CONCURRENTLY customer_state_idx ON customer (state) NULLS NOT DISTINCT;
