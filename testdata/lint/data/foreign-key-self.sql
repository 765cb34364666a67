-- foreign-key-self
SET lock_timeout = '2s';
ALTER TABLE employee ADD CONSTRAINT employee_reports_to_fkey FOREIGN KEY (reports_to) REFERENCES employee (employee_id) NOT VALID;
