-- check-writes
SET lock_timeout = '2s';
ALTER TABLE customer ADD CONSTRAINT customer_sneaky CHECK (sneaky(customer_id)) NOT VALID;
