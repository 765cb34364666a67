-- required-column
SET lock_timeout = '2s';
ALTER TABLE customer ADD COLUMN tier text NOT NULL;
