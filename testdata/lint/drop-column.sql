-- drop-column
SET lock_timeout = '2s';
ALTER TABLE customer DROP COLUMN fax;
