-- MailMesh schema 19: SMTP AUTH users made through the admin API (issue 12), next to the ones in configuration
-- (Ingress:Auth:Users). Only the PBKDF2 hash of a password is kept (the format of the hash-password verb). A disabled
-- user keeps its row, so the list says who disabled it and when; names are unique whatever their case.
CREATE TABLE spool.smtp_users (
    name                text        PRIMARY KEY,
    password_hash       text        NOT NULL,
    sender_domains      text,
    created_at          timestamptz NOT NULL,
    created_by          text        NOT NULL,
    disabled_at         timestamptz,
    disabled_by         text,
    password_changed_at timestamptz,
    password_changed_by text
);
CREATE UNIQUE INDEX smtp_users_name_ci ON spool.smtp_users (lower(name));
