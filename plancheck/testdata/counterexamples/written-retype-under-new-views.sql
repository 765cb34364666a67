-- written here, beside seed-600134: a table and a column this migration
-- adds, each read by a view it creates, then retyped (PostgreSQL refuses the
-- type change under a view; the plan drops and creates the views around it)
CREATE TABLE t (id integer PRIMARY KEY, a integer);
INSERT INTO t VALUES (1, 10), (2, NULL);
-- migration
CREATE TABLE n (id integer PRIMARY KEY, b integer);
CREATE VIEW vn AS SELECT id, b FROM n;
ALTER TABLE n ALTER COLUMN b TYPE bigint;
ALTER TABLE t ADD COLUMN c integer DEFAULT 7;
CREATE VIEW vt AS SELECT id, a, c FROM t;
ALTER TABLE t ALTER COLUMN c TYPE bigint, ALTER COLUMN c DROP DEFAULT;
