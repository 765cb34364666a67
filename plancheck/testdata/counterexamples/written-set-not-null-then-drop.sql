-- written here, beside seed-1796402116063: a column made NOT NULL and then
-- dropped in the same migration
CREATE TABLE t (id integer PRIMARY KEY, a integer, b integer CHECK (b > 0));
INSERT INTO t VALUES (1, 10, 1), (2, 20, 2);
-- migration
ALTER TABLE t ALTER COLUMN a SET NOT NULL;
ALTER TABLE t DROP COLUMN a;
