-- MailMesh schema 21 for SQLite: the TLS of each attempt's connection (see the PostgreSQL script).
ALTER TABLE spool_attempts ADD COLUMN tls_protocol TEXT;
ALTER TABLE spool_attempts ADD COLUMN tls_cipher TEXT;
ALTER TABLE spool_attempts ADD COLUMN tls_verification TEXT;

-- The admin dashboard's attempts per minute (see the PostgreSQL script).
CREATE INDEX spool_attempts_attempted_at ON spool_attempts (attempted_at);
