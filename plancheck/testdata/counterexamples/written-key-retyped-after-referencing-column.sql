-- written here, beside seed-1796408066425 (the referencing column retyped
-- before the key it references, now refused with the order that plans): the
-- same two changes key first, which plans as one chain and must prove
CREATE TABLE k2 (id integer PRIMARY KEY);
CREATE TABLE r2 (id integer PRIMARY KEY, k_id integer REFERENCES k2);
INSERT INTO k2 VALUES (1), (2);
INSERT INTO r2 VALUES (1, 2), (2, NULL);
-- migration
ALTER TABLE k2 ALTER COLUMN id TYPE bigint;
ALTER TABLE r2 ALTER COLUMN k_id TYPE bigint;
