COMMENT ON TABLE app.users IS 'people';
ALTER TABLE app.users SET (fillfactor = 90);
ALTER TABLE app.users REPLICA IDENTITY FULL;
CREATE UNIQUE INDEX users_mail_key ON app.users (lower(mail::text)) WHERE mail IS NOT NULL;
ALTER TABLE app.users RENAME CONSTRAINT users_pkey TO users_pk;
ANALYZE app.users;
