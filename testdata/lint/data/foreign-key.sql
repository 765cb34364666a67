-- foreign-key
SET lock_timeout = '2s';
ALTER TABLE customer ADD CONSTRAINT customer_country_fkey FOREIGN KEY (country) REFERENCES country_ref NOT VALID;
