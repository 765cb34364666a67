CREATE OR REPLACE FUNCTION app.touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW.created_at = now(); RETURN NEW; END $$;
CREATE TRIGGER users_touch BEFORE UPDATE ON app.users FOR EACH ROW EXECUTE FUNCTION app.touch();
DROP TRIGGER IF EXISTS users_touch ON app.users;
CREATE OR REPLACE VIEW app.active AS SELECT id, mail FROM app.users;
CREATE OR REPLACE VIEW app.active AS SELECT id, mail, created_at FROM app.users;
SELECT setval('app.users_id_seq', 1000);
