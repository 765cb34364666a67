ALTER TABLE app.users ALTER COLUMN tags TYPE varchar(40)[];
ALTER TABLE app.events ALTER COLUMN kind SET NOT NULL;
ALTER TABLE app.users ALTER COLUMN mail TYPE text;
