-- typo-table: the table is misspelt
SET lock_timeout = '2s';
ALTER TABLE custmer RENAME COLUMN email TO email_address;
