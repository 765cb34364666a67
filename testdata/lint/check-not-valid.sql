-- check-not-valid
SET lock_timeout = '2s';
ALTER TABLE customer ADD CONSTRAINT customer_id_small CHECK (customer_id < 10);
