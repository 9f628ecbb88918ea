-- A suppression says where it came from (bounce, api, complaint) and may expire; an expired one no longer suppresses.
-- Rows from before this migration: automatic suppressions were hard bounces (their reason starts "hard bounce").
ALTER TABLE policy_suppressions ADD COLUMN source TEXT NOT NULL DEFAULT 'api';
ALTER TABLE policy_suppressions ADD COLUMN expires_at INTEGER NULL;
UPDATE policy_suppressions SET source = 'bounce' WHERE reason LIKE 'hard bounce %';
