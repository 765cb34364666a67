-- change-type
SET lock_timeout = '2s';
ALTER TABLE customer ALTER COLUMN email TYPE text;
