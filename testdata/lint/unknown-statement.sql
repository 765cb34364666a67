-- unknown-statement
SET lock_timeout = '2s';
UPDATE customer SET company = '' WHERE company IS NULL;
