-- lock-timeout: DDL with no SET lock_timeout before it
ALTER TABLE customer DROP COLUMN fax;
