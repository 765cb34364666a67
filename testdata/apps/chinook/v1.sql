-- Workload of the sample app v1 (N), which uses customer.email: its
-- statements as pg_stat_statements shows them, with sample parameters.
-- Every statement runs on its own and must succeed; the writes put back
-- the values the rows already have.

-- params: 1
SELECT customer_id, first_name, last_name, email FROM customer WHERE customer_id = $1;

-- params: 'luisg@embraer.com.br'
SELECT customer_id FROM customer WHERE email = $1;

SELECT count(*) FROM customer WHERE email LIKE '%@gmail.com';

-- params: 'luisg@embraer.com.br', 1
UPDATE customer SET email = $1 WHERE customer_id = $2;

-- params: 5
SELECT c.email, i.total
FROM customer c JOIN invoice i USING (customer_id)
WHERE c.customer_id = $1
ORDER BY i.invoice_date DESC
LIMIT 3;
