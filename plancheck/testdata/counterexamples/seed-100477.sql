-- found by the differential fuzzer, seed 100477
-- check failed: error "apply through expand: the schema of public.t1 changed since the plan was made (drift): plan again against this database"
--   rollback after expand: 
--     column public.t1.c5: start "integer notnull=false default= identity= generated= collation= storage=p statistics=-1 acl=" after "(absent)"
--     rows of public.t1: start "20 rows, digest 0c2b4b7a133724612c1d4dee1f799ef2" after "20 rows, digest 25ab75e546c7f765db4756459e6c980f"
CREATE TYPE mood AS ENUM ('happy', 'sad', 'ok');
CREATE TABLE t1 (id serial PRIMARY KEY, c2 integer NOT NULL DEFAULT 11, c3 varchar(40), c4 mood, c5 integer, c6 smallint NOT NULL DEFAULT 551);
CREATE INDEX ix7 ON t1 ((c6));
INSERT INTO t1 (id, c2, c3, c4, c5, c6) VALUES (1, 920, 'v699', 'sad', 743, 931);
INSERT INTO t1 (id, c2, c3, c4, c5, c6) VALUES (2, 167, 'v240', 'happy', 202, 513);
INSERT INTO t1 (id, c2, c3, c4, c5, c6) VALUES (3, 394, 'v12', NULL, NULL, 669);
INSERT INTO t1 (id, c2, c3, c4, c5, c6) VALUES (4, 379, NULL, 'ok', 838, 23);
INSERT INTO t1 (id, c2, c3, c4, c5, c6) VALUES (5, 161, 'v753', 'ok', NULL, 939);
INSERT INTO t1 (id, c2, c3, c4, c5, c6) VALUES (6, 291, 'v784', 'happy', 30, 280);
INSERT INTO t1 (id, c2, c3, c4, c5, c6) VALUES (7, 386, 'v431', NULL, 499, 252);
INSERT INTO t1 (id, c2, c3, c4, c5, c6) VALUES (8, 950, NULL, 'happy', NULL, 27);
INSERT INTO t1 (id, c2, c3, c4, c5, c6) VALUES (9, 736, 'v538', NULL, 632, 466);
INSERT INTO t1 (id, c2, c3, c4, c5, c6) VALUES (10, 968, 'v782', 'sad', NULL, 91);
INSERT INTO t1 (id, c2, c3, c4, c5, c6) VALUES (11, 733, 'v9', 'sad', 62, 716);
INSERT INTO t1 (id, c2, c3, c4, c5, c6) VALUES (12, 600, 'v45', 'happy', 921, 351);
INSERT INTO t1 (id, c2, c3, c4, c5, c6) VALUES (13, 252, 'v866', NULL, 914, 714);
INSERT INTO t1 (id, c2, c3, c4, c5, c6) VALUES (14, 817, 'v736', NULL, NULL, 100);
INSERT INTO t1 (id, c2, c3, c4, c5, c6) VALUES (15, 388, 'v265', 'happy', 237, 766);
INSERT INTO t1 (id, c2, c3, c4, c5, c6) VALUES (16, 363, 'v801', NULL, 355, 819);
INSERT INTO t1 (id, c2, c3, c4, c5, c6) VALUES (17, 276, 'v8', NULL, 571, 650);
INSERT INTO t1 (id, c2, c3, c4, c5, c6) VALUES (18, 127, NULL, NULL, 900, 71);
INSERT INTO t1 (id, c2, c3, c4, c5, c6) VALUES (19, 82, 'v564', 'sad', NULL, 342);
INSERT INTO t1 (id, c2, c3, c4, c5, c6) VALUES (20, 836, 'v859', 'sad', 832, 673);
SELECT setval('t1_id_seq', 20);
CREATE TABLE t8 (id serial PRIMARY KEY, c9 varchar(40), c10 varchar(40) NOT NULL DEFAULT 'v751', c11 varchar(40) NOT NULL DEFAULT 'v433' UNIQUE);
INSERT INTO t8 (id, c9, c10, c11) VALUES (1, 'v107', 'v219', 'u1_269');
INSERT INTO t8 (id, c9, c10, c11) VALUES (2, NULL, 'v552', 'u2_981');
INSERT INTO t8 (id, c9, c10, c11) VALUES (3, 'v504', 'v880', 'u3_686');
INSERT INTO t8 (id, c9, c10, c11) VALUES (4, 'v457', 'v447', 'u4_282');
INSERT INTO t8 (id, c9, c10, c11) VALUES (5, 'v834', 'v207', 'u5_265');
INSERT INTO t8 (id, c9, c10, c11) VALUES (6, 'v658', 'v690', 'u6_229');
INSERT INTO t8 (id, c9, c10, c11) VALUES (7, 'v327', 'v718', 'u7_835');
INSERT INTO t8 (id, c9, c10, c11) VALUES (8, 'v658', 'v796', 'u8_409');
INSERT INTO t8 (id, c9, c10, c11) VALUES (9, 'v121', 'v260', 'u9_67');
INSERT INTO t8 (id, c9, c10, c11) VALUES (10, 'v651', 'v741', 'u10_491');
INSERT INTO t8 (id, c9, c10, c11) VALUES (11, NULL, 'v240', 'u11_741');
INSERT INTO t8 (id, c9, c10, c11) VALUES (12, 'v24', 'v372', 'u12_654');
INSERT INTO t8 (id, c9, c10, c11) VALUES (13, NULL, 'v353', 'u13_308');
INSERT INTO t8 (id, c9, c10, c11) VALUES (14, 'v45', 'v340', 'u14_965');
INSERT INTO t8 (id, c9, c10, c11) VALUES (15, 'v381', 'v196', 'u15_609');
INSERT INTO t8 (id, c9, c10, c11) VALUES (16, 'v370', 'v517', 'u16_874');
INSERT INTO t8 (id, c9, c10, c11) VALUES (17, 'v278', 'v48', 'u17_793');
INSERT INTO t8 (id, c9, c10, c11) VALUES (18, 'v975', 'v822', 'u18_357');
INSERT INTO t8 (id, c9, c10, c11) VALUES (19, NULL, 'v62', 'u19_628');
INSERT INTO t8 (id, c9, c10, c11) VALUES (20, NULL, 'v137', 'u20_601');
SELECT setval('t8_id_seq', 20);
-- migration
ALTER TABLE t1 ADD COLUMN IF NOT EXISTS c5 integer;
ALTER TABLE t1 DROP COLUMN c5 CASCADE;
