-- rename-table
SET lock_timeout = '2s';
ALTER TABLE customer RENAME TO client;
