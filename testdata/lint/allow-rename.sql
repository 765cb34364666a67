-- allow: a rename the team has decided to take the hit for
SET lock_timeout = '2s';
-- phasekit:allow rename-column the only reader is the nightly export, paused for this release
ALTER TABLE customer RENAME COLUMN fax TO fax_number;
