-- Breaks the old code: its INSERTs do not name the new NOT NULL column. The default
-- only fills the existing rows and is dropped right after.
ALTER TABLE links ADD COLUMN title text NOT NULL DEFAULT '';
ALTER TABLE links ALTER COLUMN title DROP DEFAULT;
