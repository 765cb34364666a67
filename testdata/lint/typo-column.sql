-- typo-column: the column is misspelt
SET lock_timeout = '2s';
ALTER TABLE customer ALTER COLUMN compnay SET NOT NULL;
