-- MailMesh schema 21 for SQLite: the TLS of each attempt's connection (see the PostgreSQL script).
ALTER TABLE spool_attempts ADD COLUMN tls_protocol TEXT;
ALTER TABLE spool_attempts ADD COLUMN tls_cipher TEXT;
ALTER TABLE spool_attempts ADD COLUMN tls_verification TEXT;
