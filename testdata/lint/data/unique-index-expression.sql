-- unique-index-expression
SET lock_timeout = '2s';
CREATE UNIQUE INDEX CONCURRENTLY customer_city_lower_idx ON customer (lower(city));
