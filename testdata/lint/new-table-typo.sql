-- new-table-typo: a new table whose foreign key names a misspelt table
SET lock_timeout = '2s';
CREATE TABLE loyalty (loyalty_id integer PRIMARY KEY, customer_id integer NOT NULL);
ALTER TABLE loyalty ADD CONSTRAINT loyalty_customer_fkey FOREIGN KEY (customer_id) REFERENCES custmer (customer_id) NOT VALID;
