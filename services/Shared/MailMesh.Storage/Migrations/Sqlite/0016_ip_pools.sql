-- MailMesh schema 16 for SQLite (issue 11, IP pools): see the PostgreSQL script. day is the UTC day number since
-- 0001-01-01 (DateOnly.DayNumber).
ALTER TABLE spool_messages ADD COLUMN pool TEXT;

CREATE TABLE spool_pool_counters (
    address TEXT    NOT NULL,
    day     INTEGER NOT NULL,
    sent    INTEGER NOT NULL,
    PRIMARY KEY (address, day)
) WITHOUT ROWID;
