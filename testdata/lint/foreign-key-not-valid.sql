-- foreign-key-not-valid
SET lock_timeout = '2s';
ALTER TABLE customer ADD CONSTRAINT customer_rep_fkey FOREIGN KEY (support_rep_id) REFERENCES employee (employee_id);
