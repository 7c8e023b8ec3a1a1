-- Safe: a new index changes plans, not results.
CREATE INDEX links_owner_recent ON links (owner_id, id DESC);
