-- unique-country
SET lock_timeout = '2s';
ALTER TABLE customer ADD CONSTRAINT customer_country_key UNIQUE (country);
