-- set-not-null
SET lock_timeout = '2s';
ALTER TABLE customer ALTER COLUMN company SET NOT NULL;
