-- safe: every statement can run while N and N+1 share the database
SET lock_timeout = '2s';
CREATE TABLE loyalty (
    loyalty_id integer PRIMARY KEY,
    customer_id integer NOT NULL,
    points integer NOT NULL DEFAULT 0
);
ALTER TABLE customer ADD COLUMN nickname text;
CREATE INDEX CONCURRENTLY customer_country_idx ON customer (country);
ALTER TABLE invoice ADD CONSTRAINT invoice_total_positive CHECK (total >= 0) NOT VALID;
ALTER TABLE loyalty ADD CONSTRAINT loyalty_customer_fkey FOREIGN KEY (customer_id) REFERENCES customer (customer_id) NOT VALID;
ALTER TABLE invoice VALIDATE CONSTRAINT invoice_total_positive;
ALTER TABLE loyalty VALIDATE CONSTRAINT loyalty_customer_fkey;
