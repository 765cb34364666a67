-- drop-index-concurrently
SET lock_timeout = '2s';
DROP INDEX customer_country_idx;
