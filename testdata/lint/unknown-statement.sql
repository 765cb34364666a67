-- unknown-statement
SET lock_timeout = '2s';
CLUSTER customer USING customer_pkey;
