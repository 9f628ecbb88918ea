-- MailMesh schema 23 for SQLite: the admin UI's login failures and Data Protection key ring (see the PostgreSQL
-- script). Standalone keeps them in its one file, so its UI sessions survive a restart. Times are Unix milliseconds.
CREATE TABLE spool_admin_ui_login_failures (
    name            TEXT    NOT NULL PRIMARY KEY,
    failures        INTEGER NOT NULL,
    locked_until    INTEGER,
    last_failed_at  INTEGER NOT NULL
);
CREATE INDEX spool_admin_ui_login_failures_last_failed ON spool_admin_ui_login_failures (last_failed_at);

CREATE TABLE spool_admin_ui_keys (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    friendly_name   TEXT,
    xml             TEXT    NOT NULL,
    created_at      INTEGER NOT NULL
);
