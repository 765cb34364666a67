-- new-objects: checks over what the migration itself creates cannot run
SET lock_timeout = '2s';
CREATE TABLE loyalty (loyalty_id integer PRIMARY KEY, points integer);
ALTER TABLE loyalty ADD CONSTRAINT loyalty_points_key UNIQUE (points);
ALTER TABLE customer ADD COLUMN nickname text;
ALTER TABLE customer ALTER COLUMN nickname SET NOT NULL;
ALTER TABLE customer ADD CONSTRAINT customer_id_small CHECK (customer_id < 10) NOT VALID;
