-- MailMesh schema 19 for SQLite: SMTP AUTH users made through the admin API (see the PostgreSQL script).
CREATE TABLE spool_smtp_users (
    name                TEXT    NOT NULL PRIMARY KEY COLLATE NOCASE,
    password_hash       TEXT    NOT NULL,
    sender_domains      TEXT,
    created_at          INTEGER NOT NULL,
    created_by          TEXT    NOT NULL,
    disabled_at         INTEGER,
    disabled_by         TEXT,
    password_changed_at INTEGER,
    password_changed_by TEXT
);
