-- unique-index-partial
SET lock_timeout = '2s';
CREATE UNIQUE INDEX CONCURRENTLY customer_country_not_usa_idx ON customer (country) WHERE country <> 'USA';
