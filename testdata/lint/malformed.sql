-- malformed: a missing type after the column name
SET lock_timeout = '2s';
ALTER TABLE customer ADD COLUMN tier NOT NULL;
