-- Values no two runs of the file write alike.
ALTER TABLE app.users ADD COLUMN seen timestamptz NOT NULL DEFAULT now();
ALTER TABLE app.users ADD COLUMN token uuid NOT NULL DEFAULT gen_random_uuid();
ALTER TABLE app.users ADD COLUMN touched timestamptz NOT NULL DEFAULT clock_timestamp();
UPDATE app.users SET seen = now() WHERE id % 2 = 0;
