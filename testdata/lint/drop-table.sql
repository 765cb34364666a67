-- drop-table
SET lock_timeout = '2s';
DROP TABLE playlist_track;
