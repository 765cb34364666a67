DO $$
BEGIN
  IF (SELECT character_maximum_length FROM information_schema.columns WHERE table_schema = 'app' AND table_name = 'users' AND column_name = 'tags') IS NULL THEN
    ALTER TABLE app.users ADD COLUMN IF NOT EXISTS nickname varchar(40);
  END IF;
END $$;
CREATE MATERIALIZED VIEW app.per_kind AS SELECT kind, count(*) AS n FROM app.events GROUP BY kind;
CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS per_kind_kind ON app.per_kind (kind);
VACUUM ANALYZE app.users;
