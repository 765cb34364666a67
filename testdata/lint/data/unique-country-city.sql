-- unique-country-city
SET lock_timeout = '2s';
ALTER TABLE customer ADD CONSTRAINT customer_country_city_key UNIQUE (country, city);
