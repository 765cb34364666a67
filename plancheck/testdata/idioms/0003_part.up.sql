CREATE TABLE app.events_2027 (LIKE app.events INCLUDING DEFAULTS);
ALTER TABLE app.events ATTACH PARTITION app.events_2027 FOR VALUES FROM ('2027-01-01') TO ('2028-01-01');
CREATE INDEX events_user ON app.events (user_id);
