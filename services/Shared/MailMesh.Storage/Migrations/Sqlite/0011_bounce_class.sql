-- MailMesh schema 11 for SQLite: the bounce class of each reply (see the PostgreSQL script).
ALTER TABLE spool_recipients ADD COLUMN last_bounce_class TEXT;
ALTER TABLE spool_attempts ADD COLUMN bounce_class TEXT;
