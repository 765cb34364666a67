-- plain-index
SET lock_timeout = '2s';
CREATE INDEX CONCURRENTLY customer_country_idx ON customer (country);
