-- allow-scope: the comment covers the first rename only
SET lock_timeout = '2s';
-- phasekit:allow rename-column fax is written by nothing since v41
ALTER TABLE customer RENAME COLUMN fax TO fax_number;
ALTER TABLE customer RENAME COLUMN phone TO phone_number;
