-- unique-email
SET lock_timeout = '2s';
ALTER TABLE customer ADD CONSTRAINT customer_email_key UNIQUE (email);
