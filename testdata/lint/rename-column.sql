-- rename-column
SET lock_timeout = '2s';
ALTER TABLE customer RENAME COLUMN email TO email_address;
