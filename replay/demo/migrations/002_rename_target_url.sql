-- Breaks the old code: it still selects target_url.
ALTER TABLE links ADD COLUMN last_clicked_at timestamptz;
ALTER TABLE links RENAME COLUMN target_url TO destination_url;
COMMENT ON COLUMN links.destination_url IS 'where a short code leads';
