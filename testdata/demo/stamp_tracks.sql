-- A lookup table seeded by the migration, each row stamped with the time
-- it ran: no two runs of this file leave the same rows.
CREATE TABLE track_rating (
  rating int PRIMARY KEY,
  label text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO track_rating (rating, label) VALUES (1, 'poor'), (2, 'fair'), (3, 'good'), (4, 'great'), (5, 'classic');
ALTER TABLE track ADD COLUMN rating int REFERENCES track_rating;
