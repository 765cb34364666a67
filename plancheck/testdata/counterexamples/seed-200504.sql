-- found by the differential fuzzer, seed 200504
-- check failed: error "apply through expand: the schema of public.t1 changed since the plan was made (drift): plan again against this database"
--   rollback after expand: 
--     column public.t1.r12: start "(absent)" after "character varying(40) notnull=false default= identity= generated= collation= storage=x statistics=-1 acl="
--     rows of public.t1: start "20 rows, digest 35ae49cde79aa05c26da445971207843" after "20 rows, digest 9b32dd92e2a985aba33cdb3cade9b4a4"
CREATE TYPE mood AS ENUM ('happy', 'sad', 'ok');
CREATE TABLE t1 (id integer PRIMARY KEY, c2 mood NOT NULL DEFAULT 'sad', c3 bigint NOT NULL DEFAULT 952);
CREATE INDEX ix4 ON t1 ((c2));
CREATE INDEX ix5 ON t1 ((c3));
INSERT INTO t1 (id, c2, c3) VALUES (1, 'happy', 544);
INSERT INTO t1 (id, c2, c3) VALUES (2, 'sad', 747);
INSERT INTO t1 (id, c2, c3) VALUES (3, 'happy', 637);
INSERT INTO t1 (id, c2, c3) VALUES (4, 'sad', 924);
INSERT INTO t1 (id, c2, c3) VALUES (5, 'sad', 54);
INSERT INTO t1 (id, c2, c3) VALUES (6, 'ok', 938);
INSERT INTO t1 (id, c2, c3) VALUES (7, 'happy', 952);
INSERT INTO t1 (id, c2, c3) VALUES (8, 'happy', 158);
INSERT INTO t1 (id, c2, c3) VALUES (9, 'happy', 348);
INSERT INTO t1 (id, c2, c3) VALUES (10, 'happy', 695);
INSERT INTO t1 (id, c2, c3) VALUES (11, 'sad', 786);
INSERT INTO t1 (id, c2, c3) VALUES (12, 'sad', 443);
INSERT INTO t1 (id, c2, c3) VALUES (13, 'ok', 298);
INSERT INTO t1 (id, c2, c3) VALUES (14, 'happy', 888);
INSERT INTO t1 (id, c2, c3) VALUES (15, 'sad', 329);
INSERT INTO t1 (id, c2, c3) VALUES (16, 'happy', 567);
INSERT INTO t1 (id, c2, c3) VALUES (17, 'ok', 96);
INSERT INTO t1 (id, c2, c3) VALUES (18, 'ok', 150);
INSERT INTO t1 (id, c2, c3) VALUES (19, 'ok', 221);
INSERT INTO t1 (id, c2, c3) VALUES (20, 'sad', 971);
CREATE TABLE t6 (id integer PRIMARY KEY, c7 numeric(10,2), c8 boolean NOT NULL DEFAULT false, c9 integer CHECK (c9 >= 0));
INSERT INTO t6 (id, c7, c8, c9) VALUES (1, 144.93, true, 342);
INSERT INTO t6 (id, c7, c8, c9) VALUES (2, 653.29, false, 787);
INSERT INTO t6 (id, c7, c8, c9) VALUES (3, 283.98, false, 442);
INSERT INTO t6 (id, c7, c8, c9) VALUES (4, NULL, false, 117);
INSERT INTO t6 (id, c7, c8, c9) VALUES (5, NULL, false, 41);
INSERT INTO t6 (id, c7, c8, c9) VALUES (6, NULL, true, 282);
INSERT INTO t6 (id, c7, c8, c9) VALUES (7, 331.75, false, 305);
INSERT INTO t6 (id, c7, c8, c9) VALUES (8, 363.17, false, 489);
INSERT INTO t6 (id, c7, c8, c9) VALUES (9, NULL, true, 651);
INSERT INTO t6 (id, c7, c8, c9) VALUES (10, 871.03, true, NULL);
INSERT INTO t6 (id, c7, c8, c9) VALUES (11, 278.73, false, 240);
INSERT INTO t6 (id, c7, c8, c9) VALUES (12, 147.08, true, 829);
INSERT INTO t6 (id, c7, c8, c9) VALUES (13, 486.40, true, 697);
INSERT INTO t6 (id, c7, c8, c9) VALUES (14, 789.40, false, 134);
INSERT INTO t6 (id, c7, c8, c9) VALUES (15, 504.19, true, NULL);
INSERT INTO t6 (id, c7, c8, c9) VALUES (16, 909.32, false, 578);
INSERT INTO t6 (id, c7, c8, c9) VALUES (17, 757.76, false, 498);
INSERT INTO t6 (id, c7, c8, c9) VALUES (18, 370.29, false, 614);
INSERT INTO t6 (id, c7, c8, c9) VALUES (19, 941.44, false, 271);
INSERT INTO t6 (id, c7, c8, c9) VALUES (20, 535.86, false, 478);
CREATE VIEW v10 AS SELECT id, c3 FROM t1;
-- migration
ALTER TABLE t1 ADD COLUMN a11 varchar(40);
ALTER TABLE t1 RENAME COLUMN a11 TO r12;
