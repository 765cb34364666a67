-- enum-value-rename
SET lock_timeout = '2s';
ALTER TYPE mood RENAME VALUE 'sad' TO 'unhappy';
