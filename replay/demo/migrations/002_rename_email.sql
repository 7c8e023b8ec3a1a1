-- Breaks the old code: it still reads owners.email.
ALTER TABLE owners ADD COLUMN verified_at timestamptz;
ALTER TABLE owners RENAME COLUMN email TO email_address;
COMMENT ON COLUMN owners.email_address IS 'where we write to the owner';
