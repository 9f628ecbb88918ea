-- MailMesh schema 17 for SQLite: API keys made through the admin API (see the PostgreSQL script).
CREATE TABLE spool_api_keys (
    kind            INTEGER NOT NULL,
    name            TEXT    NOT NULL,
    hash            TEXT    NOT NULL UNIQUE,
    scopes          TEXT    NOT NULL DEFAULT '',
    sender_domains  TEXT,
    created_at      INTEGER NOT NULL,
    created_by      TEXT    NOT NULL,
    disabled_at     INTEGER,
    disabled_by     TEXT,
    PRIMARY KEY (kind, name)
);
