-- A suppression says where it came from (bounce, api, complaint) and may expire; an expired one no longer suppresses.
-- Rows from before this migration: automatic suppressions were hard bounces (their reason starts "hard bounce").
ALTER TABLE policy.suppressions ADD COLUMN source text NOT NULL DEFAULT 'api';
ALTER TABLE policy.suppressions ADD COLUMN expires_at timestamptz NULL;
UPDATE policy.suppressions SET source = 'bounce' WHERE reason LIKE 'hard bounce %';
