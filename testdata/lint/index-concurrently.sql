-- index-concurrently
SET lock_timeout = '2s';
CREATE INDEX customer_country_idx ON customer (country);
