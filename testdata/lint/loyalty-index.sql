-- loyalty-index: indexes the table safe.sql creates, so it runs after it
SET lock_timeout = '2s';
CREATE INDEX CONCURRENTLY loyalty_points_idx ON loyalty (points);
