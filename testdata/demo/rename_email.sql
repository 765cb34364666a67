-- The naive migration a team would write: it breaks every running v1
-- instance the moment it runs. phasekit plans it in phases instead.
SET lock_timeout = '2s';
ALTER TABLE customer RENAME COLUMN email TO email_address;
