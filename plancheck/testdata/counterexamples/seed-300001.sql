-- found by the differential fuzzer, seed 300001
-- check failed: error "apply through contract: phase expand of plan 71fd250dff11: step 000001_expand_t1: run DDL group of 3 statement(s): statement 2 of 3 (ALTER TABLE t1 ALTER COLUMN c3 TYPE numeric(12, 2)): ERROR: cannot alter type of a column used by a view or rule (SQLSTATE 0A000)"
--   rollback after expand: apply through expand: phase expand of plan 71fd250dff11: step 000001_expand_t1: run DDL group of 3 statement(s): statement 2 of 3 (ALTER TABLE t1 ALTER COLUMN c3 TYPE numeric(12, 2)): ERROR: cannot alter type of a column used by a view or rule (SQLSTATE 0A000)
--   rollback after dual-write: apply through dual-write: phase expand of plan 71fd250dff11: step 000001_expand_t1: run DDL group of 3 statement(s): statement 2 of 3 (ALTER TABLE t1 ALTER COLUMN c3 TYPE numeric(12, 2)): ERROR: cannot alter type of a column used by a view or rule (SQLSTATE 0A000)
--   rollback after backfill: apply through backfill: phase expand of plan 71fd250dff11: step 000001_expand_t1: run DDL group of 3 statement(s): statement 2 of 3 (ALTER TABLE t1 ALTER COLUMN c3 TYPE numeric(12, 2)): ERROR: cannot alter type of a column used by a view or rule (SQLSTATE 0A000)
--   rollback after contract: apply through contract: phase expand of plan 71fd250dff11: step 000001_expand_t1: run DDL group of 3 statement(s): statement 2 of 3 (ALTER TABLE t1 ALTER COLUMN c3 TYPE numeric(12, 2)): ERROR: cannot alter type of a column used by a view or rule (SQLSTATE 0A000)
CREATE TYPE mood AS ENUM ('happy', 'sad', 'ok');
CREATE TABLE t1 (id serial PRIMARY KEY, c2 text NOT NULL DEFAULT 'v264', c3 numeric(10,2), c4 mood);
INSERT INTO t1 (id, c2, c3, c4) VALUES (1, 'v770', 801.42, NULL);
INSERT INTO t1 (id, c2, c3, c4) VALUES (2, 'v812', 208.47, 'happy');
INSERT INTO t1 (id, c2, c3, c4) VALUES (3, 'v205', NULL, 'sad');
INSERT INTO t1 (id, c2, c3, c4) VALUES (4, 'v77', 864.53, 'happy');
INSERT INTO t1 (id, c2, c3, c4) VALUES (5, 'v179', 515.49, 'sad');
INSERT INTO t1 (id, c2, c3, c4) VALUES (6, 'v803', 404.63, 'ok');
INSERT INTO t1 (id, c2, c3, c4) VALUES (7, 'v124', 301.41, 'happy');
INSERT INTO t1 (id, c2, c3, c4) VALUES (8, 'v57', 271.89, 'ok');
INSERT INTO t1 (id, c2, c3, c4) VALUES (9, 'v478', NULL, 'ok');
INSERT INTO t1 (id, c2, c3, c4) VALUES (10, 'v908', 169.17, 'happy');
INSERT INTO t1 (id, c2, c3, c4) VALUES (11, 'v725', 516.17, NULL);
INSERT INTO t1 (id, c2, c3, c4) VALUES (12, 'v220', NULL, 'sad');
INSERT INTO t1 (id, c2, c3, c4) VALUES (13, 'v844', 758.71, 'happy');
INSERT INTO t1 (id, c2, c3, c4) VALUES (14, 'v786', NULL, 'happy');
INSERT INTO t1 (id, c2, c3, c4) VALUES (15, 'v411', 999.44, 'sad');
INSERT INTO t1 (id, c2, c3, c4) VALUES (16, 'v188', 591.11, 'ok');
INSERT INTO t1 (id, c2, c3, c4) VALUES (17, 'v483', 9.72, 'sad');
INSERT INTO t1 (id, c2, c3, c4) VALUES (18, 'v448', NULL, 'sad');
INSERT INTO t1 (id, c2, c3, c4) VALUES (19, 'v653', 957.21, 'happy');
INSERT INTO t1 (id, c2, c3, c4) VALUES (20, 'v580', 626.95, 'ok');
SELECT setval('t1_id_seq', 20);
CREATE TABLE t5 (id serial PRIMARY KEY, c6 numeric(10,2), c7 numeric(10,2) NOT NULL DEFAULT 854.39, c8 varchar(40));
CREATE INDEX ix9 ON t5 ((c8));
INSERT INTO t5 (id, c6, c7, c8) VALUES (1, 765.49, 542.15, 'v372');
INSERT INTO t5 (id, c6, c7, c8) VALUES (2, 65.60, 459.16, 'v19');
INSERT INTO t5 (id, c6, c7, c8) VALUES (3, 298.70, 485.97, 'v904');
INSERT INTO t5 (id, c6, c7, c8) VALUES (4, 650.37, 226.01, NULL);
INSERT INTO t5 (id, c6, c7, c8) VALUES (5, 6.36, 376.57, 'v274');
INSERT INTO t5 (id, c6, c7, c8) VALUES (6, 348.85, 328.49, 'v387');
INSERT INTO t5 (id, c6, c7, c8) VALUES (7, 722.90, 34.00, 'v375');
INSERT INTO t5 (id, c6, c7, c8) VALUES (8, 116.75, 999.82, 'v397');
INSERT INTO t5 (id, c6, c7, c8) VALUES (9, 830.65, 977.65, 'v433');
INSERT INTO t5 (id, c6, c7, c8) VALUES (10, NULL, 115.92, 'v427');
INSERT INTO t5 (id, c6, c7, c8) VALUES (11, 523.09, 847.43, 'v147');
INSERT INTO t5 (id, c6, c7, c8) VALUES (12, 130.66, 774.30, 'v554');
INSERT INTO t5 (id, c6, c7, c8) VALUES (13, NULL, 621.95, 'v276');
INSERT INTO t5 (id, c6, c7, c8) VALUES (14, 267.04, 76.88, 'v28');
INSERT INTO t5 (id, c6, c7, c8) VALUES (15, 740.37, 122.94, NULL);
INSERT INTO t5 (id, c6, c7, c8) VALUES (16, NULL, 38.65, 'v896');
INSERT INTO t5 (id, c6, c7, c8) VALUES (17, NULL, 804.18, 'v560');
INSERT INTO t5 (id, c6, c7, c8) VALUES (18, NULL, 642.69, 'v288');
INSERT INTO t5 (id, c6, c7, c8) VALUES (19, 838.77, 797.15, NULL);
INSERT INTO t5 (id, c6, c7, c8) VALUES (20, 500.62, 821.84, 'v316');
SELECT setval('t5_id_seq', 20);
CREATE TABLE t10 (id serial PRIMARY KEY, c11 varchar(20), c12 varchar(20), c13 timestamp, c14 bigint);
CREATE INDEX ix15 ON t10 ((c14)) WHERE c14 IS NOT NULL;
INSERT INTO t10 (id, c11, c12, c13, c14) VALUES (1, 'v579', NULL, '2024-01-14 10:00', 978);
INSERT INTO t10 (id, c11, c12, c13, c14) VALUES (2, 'v642', 'v952', '2024-01-06 10:00', 663);
INSERT INTO t10 (id, c11, c12, c13, c14) VALUES (3, NULL, 'v606', '2024-01-12 10:00', NULL);
INSERT INTO t10 (id, c11, c12, c13, c14) VALUES (4, 'v276', NULL, NULL, 854);
INSERT INTO t10 (id, c11, c12, c13, c14) VALUES (5, 'v295', NULL, '2024-01-10 10:00', 334);
INSERT INTO t10 (id, c11, c12, c13, c14) VALUES (6, 'v714', 'v508', '2024-01-17 10:00', 233);
INSERT INTO t10 (id, c11, c12, c13, c14) VALUES (7, 'v88', 'v275', NULL, NULL);
INSERT INTO t10 (id, c11, c12, c13, c14) VALUES (8, 'v715', 'v635', NULL, NULL);
INSERT INTO t10 (id, c11, c12, c13, c14) VALUES (9, NULL, 'v643', '2024-01-27 10:00', 998);
INSERT INTO t10 (id, c11, c12, c13, c14) VALUES (10, 'v58', NULL, '2024-01-13 10:00', NULL);
INSERT INTO t10 (id, c11, c12, c13, c14) VALUES (11, 'v739', 'v61', NULL, 270);
INSERT INTO t10 (id, c11, c12, c13, c14) VALUES (12, 'v801', 'v809', '2024-01-12 10:00', 300);
INSERT INTO t10 (id, c11, c12, c13, c14) VALUES (13, 'v586', 'v458', NULL, 793);
INSERT INTO t10 (id, c11, c12, c13, c14) VALUES (14, 'v782', 'v734', '2024-01-15 10:00', 156);
INSERT INTO t10 (id, c11, c12, c13, c14) VALUES (15, 'v237', NULL, '2024-01-06 10:00', 502);
INSERT INTO t10 (id, c11, c12, c13, c14) VALUES (16, 'v751', 'v571', NULL, 2);
INSERT INTO t10 (id, c11, c12, c13, c14) VALUES (17, NULL, 'v693', '2024-01-10 10:00', 6);
INSERT INTO t10 (id, c11, c12, c13, c14) VALUES (18, 'v448', 'v124', '2024-01-23 10:00', 926);
INSERT INTO t10 (id, c11, c12, c13, c14) VALUES (19, 'v802', 'v730', '2024-01-28 10:00', 254);
INSERT INTO t10 (id, c11, c12, c13, c14) VALUES (20, 'v634', 'v624', '2024-01-20 10:00', 623);
SELECT setval('t10_id_seq', 20);
CREATE VIEW v16 AS SELECT id, c3 FROM t1;
-- migration
ALTER TABLE t1 RENAME COLUMN c4 TO r17;
ALTER TABLE t1 ALTER COLUMN c3 TYPE numeric(12,2);
