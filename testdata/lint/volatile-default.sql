-- volatile-default
SET lock_timeout = '2s';
ALTER TABLE customer ADD COLUMN token uuid DEFAULT gen_random_uuid();
