-- primary-key
SET lock_timeout = '2s';
ALTER TABLE customer_copy ADD PRIMARY KEY (customer_id);
