DROP VIEW app.active;
ALTER TABLE app.users DROP COLUMN home;
DROP TYPE app.addr;
TRUNCATE app.events;
